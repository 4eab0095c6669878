"""The dataset registry: a name maps to a builder that returns a :class:`FeatureSet`.

Embedded sets (``digits``, ``synthetic``) are features already; image sets go through the frozen
ResNet extractor and the feature cache. Precomputed features come from ``load_feature_file``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from data.digits import load_digits_features
from data.feature_set import FeatureSet
from data.paths import default_data_root, default_feature_root
from data.synthetic import SyntheticConfig, make_synthetic
from utils.device import resolve_device
from utils.errors import UsageError

log = logging.getLogger(__name__)
DOWNLOAD_CHOICES = ("auto", "never")
# Image datasets, built in data.images; torchvision is imported only when one of them is used.
IMAGE_DATASETS = ("cifar10", "cifar100", "caltech101", "caltech256", "flowers102", "food101", "stanfordcars",
                  "imagefolder")


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """Everything that decides which features a dataset name yields (and where files live)."""

    data_root: Path = dataclasses.field(default_factory=default_data_root)
    feature_root: Path = dataclasses.field(default_factory=default_feature_root)
    download: str = "auto"
    depth: int = 34
    weights: str = "default"
    device: str = "auto"
    gpu_id: str | None = None
    workers: int = 4
    batch_size: int = 256
    progress: bool = False
    synthetic: SyntheticConfig = SyntheticConfig()


def _embedded(build: Callable[[DataOptions], FeatureSet]) -> Callable[[str, DataOptions], FeatureSet]:
    return lambda name, options: build(options)


def _image_features(name: str, options: DataOptions) -> FeatureSet:
    from data import features as feature_cache
    from data.images import IMAGE_SOURCES, TRANSFORM_ID, ImageSplits
    from models.backbone import build_backbone, resolve_weights_name

    if options.download not in DOWNLOAD_CHOICES:
        raise UsageError(f"--download must be one of {', '.join(DOWNLOAD_CHOICES)}, got {options.download!r}")
    weights_name = resolve_weights_name(options.depth, options.weights)
    root = Path(options.data_root).expanduser()
    splits: ImageSplits = IMAGE_SOURCES[name].build(root, options.download == "auto")
    device = resolve_device(options.device, options.gpu_id)
    precision = _precision(device)
    backbone = None

    def split_features(split: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal backbone
        key = {"dataset": name, "split": split, "depth": options.depth, "weights": weights_name,
               "transform": TRANSFORM_ID, "precision": precision, "content": splits.fingerprint}

        def compute() -> tuple[np.ndarray, np.ndarray]:
            nonlocal backbone
            if backbone is None:
                backbone = build_backbone(options.depth, options.weights)
            dataset = splits.train if split == "train" else splits.test
            return feature_cache.extract(backbone, dataset, device, batch_size=options.batch_size,
                                         workers=options.workers, amp=True, progress=options.progress,
                                         description=f"{name} {split}")

        x, y, hit = feature_cache.cached_features(Path(options.feature_root).expanduser(), key, compute)
        log.info("%s %s features: %s (%d × %d)", name, split, "cache hit" if hit else "extracted", *x.shape)
        return x, y

    x_train, y_train = split_features("train")
    x_test, y_test = split_features("test")
    return FeatureSet(
        name=name, train_features=x_train, train_labels=y_train, test_features=x_test, test_labels=y_test,
        class_names=splits.class_names, source=_image_source(name, options, precision, splits.fingerprint),
    )


def _precision(device) -> str:
    return "amp-fp16" if device.type == "cuda" else "fp32"


def _image_source(name: str, options: DataOptions, precision: str, fingerprint: str) -> str:
    """The ``FeatureSet.source`` of an image dataset: everything that determines its features."""
    from data.images import TRANSFORM_ID
    from models.backbone import resolve_weights_name

    content = f"/{fingerprint}" if fingerprint else ""
    return f"{name}/resnet{options.depth}/{resolve_weights_name(options.depth, options.weights)}/{TRANSFORM_ID}/{precision}{content}"


def feature_source(name: str, options: DataOptions | None = None) -> str:
    """The source string ``load_feature_set(name, options)`` would give, without extracting any features."""
    options = options or DataOptions()
    if name not in BUILDERS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    if name not in IMAGE_DATASETS:
        return BUILDERS[name](name, options).source
    fingerprint = ""
    if name == "imagefolder":
        from data.images import IMAGE_SOURCES

        fingerprint = IMAGE_SOURCES[name].build(Path(options.data_root).expanduser(), False).fingerprint
    return _image_source(name, options, _precision(resolve_device(options.device, options.gpu_id)), fingerprint)


BUILDERS: dict[str, Callable[[str, DataOptions], FeatureSet]] = {
    "digits": _embedded(lambda options: load_digits_features()),
    "synthetic": _embedded(lambda options: make_synthetic(options.synthetic)),
    **{name: _image_features for name in IMAGE_DATASETS},
}
DATASET_NAMES = tuple(BUILDERS)


def load_feature_set(name: str, options: DataOptions | None = None) -> FeatureSet:
    """Features and labels of dataset ``name``; an unknown name is an error listing the valid ones."""
    if name not in BUILDERS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return BUILDERS[name](name, options or DataOptions())
