"""Shared by the analysis commands: dataset flags as train_linear.py names them, and figures saved as PNG + PDF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure

from data import DATASET_NAMES, DataOptions, FeatureSet, load_feature_file, load_feature_set
from data.synthetic import SyntheticConfig
from models.choices import DEPTHS, WEIGHT_CHOICES
from utils.atomic import atomic_path

FIGURE_FORMATS = ("png", "pdf")


def add_data_arguments(parser: argparse.ArgumentParser, several: bool) -> None:
    """``-d/--dataset``, ``--features`` and the flags that decide image features, with train_linear.py's meanings.

    ``several``: ``-d`` and ``--features`` take one or more values each (both may be given);
    otherwise one value, and ``--features`` replaces ``-d``.
    """
    data = parser.add_argument_group("data (as train_linear.py)")
    if several:
        data.add_argument("-d", "--dataset", nargs="+", metavar="NAME",
                          help=f"dataset(s), each one of: {', '.join(DATASET_NAMES)} (default digits)")
        data.add_argument("--features", type=Path, nargs="+", metavar="FILE",
                          help="precomputed features file(s) (.npz or .pt dict), besides or instead of --dataset")
    else:
        data.add_argument("-d", "--dataset", default="digits", metavar="NAME",
                          help=f"one of: {', '.join(DATASET_NAMES)} (default digits)")
        data.add_argument("--features", type=Path, metavar="FILE",
                          help="precomputed features (.npz or .pt dict); replaces --dataset")
    data.add_argument("--data-root", type=Path, help="folder holding downloaded datasets (env SELFDISTILL_DATA_ROOT)")
    data.add_argument("--feature-root", type=Path, help="folder for cached features (env SELFDISTILL_FEATURE_ROOT)")
    data.add_argument("--download", choices=("auto", "never"), default="auto",
                      help="fetch missing datasets (default auto)")
    data.add_argument("--depth", type=int, choices=DEPTHS, default=34, help="ResNet depth (default 34)")
    data.add_argument("--weights", choices=WEIGHT_CHOICES, default="default",
                      help="backbone weights: torchvision's DEFAULT, or none (random init)")
    data.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                      help="device for feature extraction (default auto: CUDA when available)")
    data.add_argument("--gpu-id", help="CUDA_VISIBLE_DEVICES to use")
    data.add_argument("-j", "--workers", type=int, default=4, help="image decoding workers (default 4)")


def data_options(args: argparse.Namespace) -> DataOptions:
    overrides = {"data_root": args.data_root, "feature_root": args.feature_root}
    return DataOptions(
        **{key: value for key, value in overrides.items() if value is not None},
        download=args.download, depth=args.depth, weights=args.weights, device=args.device,
        gpu_id=args.gpu_id, workers=args.workers, progress=sys.stderr.isatty(), synthetic=SyntheticConfig(),
    )


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
