"""The command-line flags that choose a dataset and how its features are made, shared by every script."""

from __future__ import annotations

import argparse
from pathlib import Path

from data.paths import add_root_flags
from data.registry import (
    DATASET_NAMES,
    DEVICE_CHOICES,
    DOWNLOAD_CHOICES,
    MAX_DEFAULT_WORKERS,
    DataOptions,
    check_dataset,
    default_workers,
)
from data.synthetic import SyntheticConfig
from models.choices import DEFAULT_ARCH, DEPTHS, PRECISION_CHOICES, TRANSFORM_CHOICES

BOTH = "give --depth or --arch, not both (--depth {depth} means --arch resnet{depth})"


class _DepthAction(argparse.Action):
    """``--depth N``: refused after ``--arch``; remembered, so that a later ``--arch`` is refused too."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, "arch", None) is not None:
            parser.error(BOTH.format(depth=values))
        setattr(namespace, self.dest, values)
        namespace.depth_given = True


class _ArchAction(argparse.Action):
    """``--arch NAME``: refused after ``--depth``; sets ``depth`` to None (the depth belongs to a ResNet)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, "depth_given", False):
            parser.error(BOTH.format(depth=namespace.depth))
        setattr(namespace, self.dest, values)
        namespace.depth = None


def add_data_arguments(
    parser: argparse.ArgumentParser,
    *,
    many_datasets: bool = False,
    many_files: bool = False,
    default_dataset: str | None = "digits",
) -> argparse._ArgumentGroup:
    """``-d/--dataset``, ``--features`` and the flags that decide image features; returns the group.

    ``many_datasets`` / ``many_files``: ``-d`` / ``--features`` take one or more values.
    """
    data = parser.add_argument_group("data")
    default = [default_dataset] if many_datasets and default_dataset else default_dataset
    data.add_argument(
        "-d",
        "--dataset",
        nargs="+" if many_datasets else None,
        default=default,
        metavar="NAME",
        help=f"{'one or more' if many_datasets else 'one'} of: {', '.join(DATASET_NAMES)} "
        + (f" (default: {default_dataset})" if default_dataset else " (default: none; give -d or --features)"),
    )
    data.add_argument(
        "--features",
        type=Path,
        nargs="+" if many_files else None,
        metavar="FILE",
        help="precomputed features (.npz or .pt dict)"
        + (" (default: none)" if many_files else "; replaces --dataset (default: none, --dataset's features)"),
    )
    add_root_flags(data)
    data.add_argument(
        "--download", choices=DOWNLOAD_CHOICES, default="auto", help="fetch missing datasets (default: auto)"
    )
    data.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto: CUDA when available")
    data.add_argument(
        "--gpu-id", help="CUDA_VISIBLE_DEVICES to use (default: leave CUDA_VISIBLE_DEVICES as the environment sets it)"
    )

    backbone = parser.add_argument_group("backbone (image datasets)")
    # Without either flag, args.depth is 34 (resnet34), as before --arch existed; with --arch it is None.
    backbone.add_argument(
        "--arch",
        metavar="NAME",
        action=_ArchAction,
        help=f"any torchvision classification model, e.g. resnet50, vit_b_16, convnext_tiny, "
        f"efficientnet_b0 (default {DEFAULT_ARCH})",
    )
    backbone.add_argument(
        "--depth",
        type=int,
        choices=DEPTHS,
        default=34,
        action=_DepthAction,
        help="ResNet depth, the paper's flag: --depth 50 means --arch resnet50 (default 34 when --arch is not given)",
    )
    backbone.add_argument(
        "--weights",
        default="default",
        metavar="NAME",
        help="default (torchvision's recommended), none (random init: offline tests), or a weights "
        "name of the architecture such as IMAGENET1K_V1 (default: default)",
    )
    backbone.add_argument(
        "--transform",
        choices=TRANSFORM_CHOICES,
        help="paper: Resize((224, 224)) + ImageNet mean/std; weights: the weights' own transforms() "
        "(default: paper for ResNets, weights for other architectures)",
    )
    backbone.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="extraction arithmetic; auto: fp16 autocast on CUDA, fp32 on a CPU (default auto)",
    )
    backbone.add_argument(
        "--extract-batch",
        type=int,
        metavar="N",
        help="images per extraction batch (default: 512 on CUDA, halved on out-of-memory; 64 on a CPU)",
    )
    backbone.add_argument(
        "-j",
        "--workers",
        type=int,
        default=default_workers(),
        help=f"image decoding workers (default: min({MAX_DEFAULT_WORKERS}, available CPUs) = {default_workers()})",
    )
    return data


def data_options(args: argparse.Namespace) -> DataOptions:
    """The validated :class:`DataOptions` the parsed data flags describe (a :class:`UsageError` names a bad flag)."""
    overrides = {"data_root": args.data_root, "feature_root": args.feature_root}
    return DataOptions(
        **{key: value for key, value in overrides.items() if value is not None},
        download=args.download,
        depth=args.depth,
        arch=args.arch,
        weights=args.weights,
        transform=args.transform,
        precision=args.precision,
        device=args.device,
        gpu_id=args.gpu_id,
        workers=args.workers,
        batch_size=args.extract_batch,
        progress=True,
        synthetic=SyntheticConfig(),
    ).validate()


def check_data_arguments(args: argparse.Namespace, datasets) -> None:
    """The dataset names and the data and backbone flags, checked before anything heavy is imported (no torch:
    a typo fails at once)."""
    for name in datasets if args.features is None else []:
        check_dataset(name)
    data_options(args)
