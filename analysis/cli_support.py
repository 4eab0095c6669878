"""Shared by the analysis commands: loading the features their data flags name."""

from __future__ import annotations

import argparse

from data import FeatureSet, load_feature_file, load_feature_set
from data.arguments import data_options


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
