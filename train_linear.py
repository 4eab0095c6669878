"""Linear probing on frozen features with noisy labels.

``python train_linear.py --summary`` prints what a run would train on: the dataset's sizes and
feature shape, the class clusters and, for every seed and corruption rate given, the noise
transition matrix with the realised corruption rate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from data import DATASET_NAMES, DataOptions, FeatureSet, load_feature_file, load_feature_set
from data.clusters import NOISE_CUT, class_similarity, cluster_classes
from data.noise import NOISE_TYPES, check_rate, make_noisy_labels
from data.summary import describe_clusters, describe_features, describe_noise
from data.synthetic import SyntheticConfig
from models.backbone import ARCHITECTURES, WEIGHT_CHOICES
from utils.cli import OneLineParser
from utils.device import DEVICE_CHOICES
from utils.errors import exits_cleanly


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="train_linear.py", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--dataset", default="digits", help=f"one of: {', '.join(DATASET_NAMES)} (default digits)")
    data.add_argument("--features", type=Path, metavar="FILE",
                      help="precomputed features (.npz or .pt dict); replaces --dataset")
    data.add_argument("--data-root", type=Path, help="folder holding downloaded datasets (env SELFDISTILL_DATA_ROOT)")
    data.add_argument("--feature-root", type=Path, help="folder for cached features (env SELFDISTILL_FEATURE_ROOT)")
    data.add_argument("--download", choices=("auto", "never"), default="auto", help="fetch missing datasets (default auto)")
    data.add_argument("--depth", type=int, choices=sorted(ARCHITECTURES), default=34, help="ResNet depth (default 34)")
    data.add_argument("--weights", choices=WEIGHT_CHOICES, default="default",
                      help="backbone weights: torchvision's DEFAULT, or none (random init, for offline tests)")
    data.add_argument("-j", "--workers", type=int, default=4, help="image decoding workers (default 4)")
    data.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto: CUDA when available")
    data.add_argument("--gpu-id", help="CUDA_VISIBLE_DEVICES to use")
    noise = parser.add_argument_group("label noise")
    noise.add_argument("--ctype", choices=NOISE_TYPES, default="cc", help="noise type (default cc: superclass)")
    noise.add_argument("--corruption", type=float, nargs="+", default=[0.5], metavar="ETA",
                       help="corruption rate(s) η in [0, 1] (default 0.5)")
    noise.add_argument("--manualSeed", "--seeds", dest="seeds", type=int, nargs="+", default=[0], metavar="SEED",
                       help="seed(s) (default 0)")
    parser.add_argument("--summary", action="store_true", help="print the data summary and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def data_options(args: argparse.Namespace) -> DataOptions:
    overrides = {"data_root": args.data_root, "feature_root": args.feature_root}
    return DataOptions(
        **{key: value for key, value in overrides.items() if value is not None},
        download=args.download, depth=args.depth, weights=args.weights, device=args.device,
        gpu_id=args.gpu_id, workers=args.workers, progress=sys.stderr.isatty(), synthetic=SyntheticConfig(),
    )


def load_features(args: argparse.Namespace) -> FeatureSet:
    if args.features is not None:
        return load_feature_file(args.features)
    return load_feature_set(args.dataset, data_options(args))


def summary(args: argparse.Namespace) -> str:
    features = load_features(args)
    similarity = class_similarity(features.train_features, features.train_labels, features.num_classes)
    clusters = cluster_classes(similarity, NOISE_CUT)
    parts = [describe_features(features), describe_clusters(clusters, features.class_names, NOISE_CUT)]
    for seed in args.seeds:
        for eta in args.corruption:
            noisy = make_noisy_labels(features.train_labels, args.ctype, eta, seed, features.num_classes, clusters)
            parts.append(describe_noise(args.ctype, eta, seed, noisy))
    return "\n\n".join(parts)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for eta in args.corruption:
        check_rate(eta)
    print(summary(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
