"""Shared by the analysis commands: loading the features their data flags name, and figures saved as PNG + PDF."""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure

from data import FeatureSet, load_feature_file, load_feature_set
from data.arguments import data_options
from utils.atomic import atomic_path

FIGURE_FORMATS = ("png", "pdf")


def load_feature_sets(args: argparse.Namespace) -> list[FeatureSet]:
    """The datasets named by ``-d`` (several form), then the ``--features`` files; ``digits`` when neither is given."""
    files = list(args.features or [])
    names = list(args.dataset or ([] if files else ["digits"]))
    options = data_options(args)
    return [load_feature_set(name, options) for name in names] + [load_feature_file(path) for path in files]


def load_one_feature_set(args: argparse.Namespace) -> FeatureSet:
    if args.features is not None:
        return load_feature_file(args.features)
    return load_feature_set(args.dataset, data_options(args))


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically (temp file + rename); return the paths."""
    paths = []
    for fmt in FIGURE_FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path) as temp:
            figure.savefig(temp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths
