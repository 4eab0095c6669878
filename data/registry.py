"""The dataset registry: a name maps to a builder that returns a :class:`FeatureSet`.

Embedded sets (``digits``, ``synthetic``) are features already; image sets go through a frozen
torchvision backbone and the sharded feature cache. Precomputed features come from
``load_feature_file``. :func:`feature_identity` says which features a name and options give
(backbone, weights, source) without extracting anything and without torch (except to ask whether
CUDA is there, when ``--device auto`` and ``--precision auto`` leave that open).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, NamedTuple

from data.digits import BACKBONE as DIGITS_BACKBONE
from data.digits import SOURCE as DIGITS_SOURCE
from data.digits import load_digits_features
from data.feature_set import FeatureSet, check_splits
from data.paths import default_data_root, default_feature_root
from data.synthetic import BACKBONE as SYNTHETIC_BACKBONE
from data.synthetic import SyntheticConfig, make_synthetic, synthetic_source
from models.choices import PRECISION_CHOICES, BackboneSpec, backbone_spec, precision_id
from utils import checks
from utils.device import DEVICE_CHOICES
from utils.errors import UsageError, UserError
from utils.threads import available_cpus

log = logging.getLogger(__name__)
DOWNLOAD_CHOICES = ("auto", "never")
# Image datasets, built in data.images; torchvision is imported only when one of them is used.
IMAGE_DATASETS = (
    "cifar10",
    "cifar100",
    "caltech101",
    "caltech256",
    "flowers102",
    "food101",
    "stanfordcars",
    "imagefolder",
)


MAX_DEFAULT_WORKERS = 4  # the cap of the default only: an explicit -j may ask for more


def default_workers() -> int:
    """-j/--workers' default: 4 image decoding processes, fewer where fewer CPUs are available (the
    affinity mask a scheduler sets), since more processes than CPUs only contend."""
    return min(MAX_DEFAULT_WORKERS, available_cpus())


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """Everything that decides which features a dataset name yields (and where files live and how fast)."""

    data_root: Path = dataclasses.field(default_factory=default_data_root)
    feature_root: Path = dataclasses.field(default_factory=default_feature_root)
    download: str = "auto"
    depth: int | None = None  # 18, 34 or 50: resnet18/34/50; neither depth nor arch: resnet34
    arch: str | None = None  # any torchvision classification model
    weights: str = "default"  # default, none (random init) or a weights enum member
    transform: str | None = None  # paper or weights; None: paper for ResNets, weights otherwise
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on a CPU), fp16, bf16, fp32
    device: str = "auto"
    gpu_id: str | None = None
    workers: int = dataclasses.field(default_factory=default_workers)
    batch_size: int | None = None  # --extract-batch; None: 512 on CUDA (halved on out-of-memory), 64 on a CPU
    shard_rows: int | None = None  # rows per cache shard; None: data.features.SHARD_ROWS
    progress: bool = False
    synthetic: SyntheticConfig = SyntheticConfig()

    def validate(self) -> DataOptions:
        """Raise a :class:`UsageError` naming the flag of the first setting that cannot work; returns self."""
        checks.choice("--download", self.download, DOWNLOAD_CHOICES)
        checks.choice("--device", self.device, DEVICE_CHOICES)
        checks.choice("--precision", self.precision, PRECISION_CHOICES)
        checks.integer("-j/--workers", self.workers, 0)
        if self.batch_size is not None:
            checks.integer("--extract-batch", self.batch_size, 1)
        if self.shard_rows is not None:
            checks.integer("shard_rows", self.shard_rows, 1)
        self.backbone_spec()
        return self

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.depth, self.arch, self.weights, self.transform)


class FeatureIdentity(NamedTuple):
    """Which features a dataset name and options give, as :class:`FeatureSet` names them."""

    backbone: str
    weights: str
    source: str


def _precision(options: DataOptions) -> str:
    if options.precision != "auto" or options.device == "cpu":
        return precision_id(options.precision, cuda=False)
    from utils.device import resolve_device

    return precision_id("auto", resolve_device(options.device, options.gpu_id).type == "cuda")


def _image_source(name: str, spec: BackboneSpec, precision: str, fingerprint: str) -> str:
    """The ``FeatureSet.source`` of an image dataset: everything that determines its features."""
    content = f"/{fingerprint}" if fingerprint else ""
    return f"{name}/{spec.arch}/{spec.weights_name}/{spec.transform_id}/{precision}{content}"


def _fingerprint(name: str, options: DataOptions) -> str:
    """The content hash of a user's own images (imagefolder); '' for the published datasets."""
    if name != "imagefolder":
        return ""
    from data.images import list_image_folder

    return list_image_folder(Path(options.data_root).expanduser()).fingerprint


def _image_identity(name: str, options: DataOptions) -> FeatureIdentity:
    spec = options.backbone_spec()
    source = _image_source(name, spec, _precision(options), _fingerprint(name, options))
    return FeatureIdentity(spec.arch, spec.weights_name, source)


def _image_features(name: str, options: DataOptions) -> FeatureSet:
    from data import features as extraction
    from data.images import IMAGE_SOURCES, image_transform
    from models import backbone as backbones
    from utils.device import resolve_device

    spec = options.backbone_spec()
    device = resolve_device(options.device, options.gpu_id)
    precision = precision_id(options.precision, device.type == "cuda")
    root = Path(options.data_root).expanduser()
    splits = IMAGE_SOURCES[name].build(root, options.download == "auto", image_transform(spec))
    built: list = []

    def backbone():
        if not built:
            built.append(backbones.build_backbone(spec.arch, options.weights))
        return built[0]

    arrays = []
    for split, dataset in (("train", splits.train), ("test", splits.test)):
        if len(dataset) == 0:
            raise UserError(f"{name}: the {split} split under {root} holds no images")
        key = extraction.cache_key(name, split, spec, precision, splits.fingerprint)
        cache = extraction.FeatureCache(
            Path(options.feature_root).expanduser(),
            key,
            len(dataset),
            len(splits.class_names),
            options.shard_rows or extraction.SHARD_ROWS,
        )
        settings = extraction.ExtractSettings(
            device, precision, options.batch_size, options.workers, options.progress, f"{name} {split}"
        )
        x, y, hit = extraction.cached_features(cache, dataset, backbone, settings)
        log.info(
            "%s %s features: %s (%d × %d) in %s",
            name,
            split,
            "cache hit" if hit else "extracted",
            *x.shape,
            cache.index_path,
        )
        arrays += [x, y]
    check_splits(f"{name} (under {root})", *arrays, splits.class_names)
    x_train, y_train, x_test, y_test = arrays
    return FeatureSet(
        name=name,
        train_features=x_train,
        train_labels=y_train,
        test_features=x_test,
        test_labels=y_test,
        class_names=splits.class_names,
        source=_image_source(name, spec, precision, splits.fingerprint),
        backbone=spec.arch,
        weights=spec.weights_name,
    )


@dataclasses.dataclass(frozen=True)
class Entry:
    build: Callable[[str, DataOptions], FeatureSet]
    identity: Callable[[str, DataOptions], FeatureIdentity]


REGISTRY: dict[str, Entry] = {
    "digits": Entry(
        lambda name, options: load_digits_features(),
        lambda name, options: FeatureIdentity(DIGITS_BACKBONE, "none", DIGITS_SOURCE),
    ),
    "synthetic": Entry(
        lambda name, options: make_synthetic(options.synthetic),
        lambda name, options: FeatureIdentity(SYNTHETIC_BACKBONE, "none", synthetic_source(options.synthetic)),
    ),
    **{name: Entry(_image_features, _image_identity) for name in IMAGE_DATASETS},
}
DATASET_NAMES = tuple(REGISTRY)


def check_dataset_name(name: str) -> str:
    """``name`` if it is a registered dataset, else a :class:`UsageError` listing the valid names."""
    _entry(name)
    return name


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return REGISTRY[name]


def check_dataset(name: str) -> str:
    """``name`` if the registry has it, else the UsageError that lists the valid names (no import of torch)."""
    _entry(name)
    return name


def feature_identity(name: str, options: DataOptions | None = None) -> FeatureIdentity:
    """(backbone, weights, source) that ``load_feature_set(name, options)`` would give, without extracting."""
    entry = _entry(name)
    return entry.identity(name, (options or DataOptions()).validate())


def feature_source(name: str, options: DataOptions | None = None) -> str:
    """The source string ``load_feature_set(name, options)`` would give, without extracting any features."""
    return feature_identity(name, options).source


def load_feature_set(name: str, options: DataOptions | None = None) -> FeatureSet:
    """Features and labels of dataset ``name``; an unknown name is an error listing the valid ones."""
    entry = _entry(name)
    return entry.build(name, (options or DataOptions()).validate())


def features_cached(name: str, options: DataOptions | None = None) -> bool:
    """Whether ``load_feature_set(name, options)`` would read both splits from the cache (their index files
    are there; the shards are checked when they are read). Embedded sets need no cache: always True."""
    _entry(name)
    if name not in IMAGE_DATASETS:
        return True
    from data import features as extraction

    options = (options or DataOptions()).validate()
    spec, root = options.backbone_spec(), Path(options.feature_root).expanduser()
    precision, fingerprint = _precision(options), _fingerprint(name, options)
    return all(
        extraction.cache_path(root, extraction.cache_key(name, split, spec, precision, fingerprint)).exists()
        for split in ("train", "test")
    )
