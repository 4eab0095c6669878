"""The command-line flags that choose a dataset and how its features are made, shared by every script."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.registry import DATASET_NAMES, DataOptions
from data.synthetic import SyntheticConfig
from models.choices import DEPTHS, WEIGHT_CHOICES
from utils.device import DEVICE_CHOICES


def add_data_arguments(parser: argparse.ArgumentParser, *, many_datasets: bool = False, many_files: bool = False,
                       default_dataset: str | None = "digits") -> argparse._ArgumentGroup:
    """``-d/--dataset``, ``--features`` and the flags that decide image features; returns the group.

    ``many_datasets`` / ``many_files``: ``-d`` / ``--features`` take one or more values.
    """
    data = parser.add_argument_group("data")
    default = [default_dataset] if many_datasets and default_dataset else default_dataset
    data.add_argument("-d", "--dataset", nargs="+" if many_datasets else None, default=default, metavar="NAME",
                      help=f"{'one or more' if many_datasets else 'one'} of: {', '.join(DATASET_NAMES)} "
                           f"(default {default_dataset})")
    data.add_argument("--features", type=Path, nargs="+" if many_files else None, metavar="FILE",
                      help="precomputed features (.npz or .pt dict)" + ("" if many_files else "; replaces --dataset"))
    data.add_argument("--data-root", type=Path, help="folder holding downloaded datasets (env SELFDISTILL_DATA_ROOT)")
    data.add_argument("--feature-root", type=Path, help="folder for cached features (env SELFDISTILL_FEATURE_ROOT)")
    data.add_argument("--download", choices=("auto", "never"), default="auto", help="fetch missing datasets (default auto)")
    data.add_argument("--depth", type=int, choices=DEPTHS, default=34, help="ResNet depth (default 34)")
    data.add_argument("--weights", choices=WEIGHT_CHOICES, default="default",
                      help="backbone weights: torchvision's DEFAULT, or none (random init, for offline tests)")
    data.add_argument("-j", "--workers", type=int, default=4, help="image decoding workers (default 4)")
    data.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto: CUDA when available")
    data.add_argument("--gpu-id", help="CUDA_VISIBLE_DEVICES to use")
    return data


def data_options(args: argparse.Namespace) -> DataOptions:
    """The :class:`DataOptions` the parsed data flags describe."""
    overrides = {"data_root": args.data_root, "feature_root": args.feature_root}
    return DataOptions(
        **{key: value for key, value in overrides.items() if value is not None},
        download=args.download, depth=args.depth, weights=args.weights, device=args.device,
        gpu_id=args.gpu_id, workers=args.workers, progress=sys.stderr.isatty(), synthetic=SyntheticConfig(),
    )
