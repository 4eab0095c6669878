"""Frozen-feature extraction into a sharded cache keyed by everything that changes the features.

The key holds dataset, split, architecture, exact weights, transform and precision (and, for a
user's image folder, its path and content hash); the file name carries a hash of the key and every
file stores the key itself, so a hit is never stale. For the paper's ResNets (18/34/50) with the
paper's transform, key and file name are exactly those of the caches written before other
architectures existed (``"depth": 34`` in the key, ``…-resnet34-…`` in the name), so those stay hits.

Layout under the feature root (``--feature-root``)::

    <dataset>-<split>-<arch>-<precision>-<hash>.pt            the index, written last
    <dataset>-<split>-<arch>-<precision>-<hash>.shards/00000.pt, 00001.pt, …   SHARD_ROWS rows each

Each shard holds the key, its position and its rows' float32 features and int64 labels, and is
written atomically when complete, so extraction never holds more than one shard of features (and a
few batches of images), and an interrupted extraction resumes from its last complete shard. The
index (rows, dimension, shard list) is written after the last shard; an index of the older
single-file form (key, features, labels) is read as before. A file that does not hold what its key
promises (truncated, wrong shape, NaN, labels out of range) is rebuilt, with a note under ``-v``.

Extraction: DataLoader workers decode (persistent, prefetching, an explicit generator: no draw
from the global RNG), pinned memory and non-blocking copies on CUDA, channels-last, inference
mode, autocast at the chosen precision (fp16 on CUDA by default, fp32 on a CPU); batches of 512 on
CUDA, halved on out-of-memory, and 64 on a CPU unless ``--extract-batch`` says otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from data.feature_file import tensor_problem
from models.backbone import Backbone
from models.choices import BackboneSpec
from utils import atomic
from utils.errors import UserError
from utils.progress import Steps, interactive
from utils.unreadable import DAMAGED_FILE

log = logging.getLogger(__name__)
SHARD_ROWS = 4096
INDEX_FORMAT = "shards-v1"
CUDA_BATCH, CPU_BATCH = 512, 64
LOADER_SEED = 0


def cache_key(dataset: str, split: str, spec: BackboneSpec, precision: str, content: str) -> dict:
    """What determines one split's features. The paper's ResNets with the paper's transform keep their old key."""
    model = {"depth": spec.resnet_depth} if spec.resnet_depth and spec.transform == "paper" else {"arch": spec.arch}
    return {
        "dataset": dataset,
        "split": split,
        **model,
        "weights": spec.weights_name,
        "transform": spec.transform_id,
        "precision": precision,
        "content": content,
    }


def cache_path(feature_root: Path, key: dict) -> Path:
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=6).hexdigest()
    model = f"resnet{key['depth']}" if "depth" in key else key["arch"]
    return Path(feature_root) / f"{key['dataset']}-{key['split']}-{model}-{key['precision']}-{digest}.pt"


def _arrays_problem(features, labels, rows: int, num_classes: int, dim: int | None = None) -> str | None:
    """What keeps cached (features, labels) tensors from being ``rows`` valid rows, or None."""
    if not (isinstance(features, torch.Tensor) and isinstance(labels, torch.Tensor)):
        return "not tensors"
    problem = tensor_problem(features) or tensor_problem(labels)
    if problem:
        return problem
    if features.dtype != torch.float32 or features.ndim != 2 or features.shape[1] < 1:
        return f"features of dtype {features.dtype} and shape {tuple(features.shape)}"
    if dim is not None and features.shape[1] != dim:
        return f"dimension {features.shape[1]}, expected {dim}"
    if labels.dtype != torch.int64 or labels.shape != (features.shape[0],) or features.shape[0] != rows:
        return f"{features.shape[0]} feature rows and labels of shape {tuple(labels.shape)}, expected {rows}"
    if not bool(torch.isfinite(features).all()):
        return "NaN or infinite features"
    if rows and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        return f"labels outside 0..{num_classes - 1}"
    return None


def _load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


class FeatureCache:
    """One split's cache entry: the index file and its shard folder."""

    def __init__(self, feature_root: Path, key: dict, rows: int, num_classes: int, shard_rows: int = SHARD_ROWS):
        self.key, self.rows, self.num_classes, self.shard_rows = key, rows, num_classes, shard_rows
        self.index_path = cache_path(feature_root, key)
        self.shard_dir = self.index_path.with_suffix(".shards")
        self.dim: int | None = None

    @property
    def num_shards(self) -> int:
        return math.ceil(self.rows / self.shard_rows)

    def shard_path(self, number: int) -> Path:
        return self.shard_dir / f"{number:05d}.pt"

    def shard_range(self, number: int) -> tuple[int, int]:
        return number * self.shard_rows, min((number + 1) * self.shard_rows, self.rows)

    def _stale(self, path: Path, why: str) -> None:
        log.info("feature cache %s %s; rebuilding it", path, why)

    def load(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached (features, labels) if the entry is complete and holds exactly what the key says, else None."""
        if not self.index_path.exists():
            return None
        try:
            entry = _load(self.index_path)
        except DAMAGED_FILE as error:  # a truncated zip raises RuntimeError, a foreign pickle UnpicklingError, ...
            return self._stale(self.index_path, f"is unreadable ({type(error).__name__})")
        if not isinstance(entry, dict) or entry.get("key") != self.key:
            return self._stale(self.index_path, "does not hold this key")
        if "features" in entry:  # the single-file form written before shards
            problem = _arrays_problem(entry["features"], entry.get("labels"), self.rows, self.num_classes)
            if problem:
                return self._stale(self.index_path, f"holds {problem}")
            return entry["features"].numpy(), entry["labels"].numpy()
        if (
            entry.get("format") != INDEX_FORMAT
            or entry.get("rows") != self.rows
            or entry.get("shard_rows") != self.shard_rows
            or not isinstance(entry.get("dim"), int)
        ):
            return self._stale(self.index_path, "is not an index of this split")
        self.dim = entry["dim"]
        features = np.empty((self.rows, self.dim), dtype=np.float32)
        labels = np.empty(self.rows, dtype=np.int64)
        for number in range(self.num_shards):
            shard = self._read_shard(number)
            if shard is None:
                return None
            start, stop = self.shard_range(number)
            features[start:stop], labels[start:stop] = shard
        return features, labels

    def _read_shard(self, number: int) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.shard_path(number)
        if not path.exists():
            return None
        try:
            entry = _load(path)
        except DAMAGED_FILE as error:
            return self._stale(path, f"is unreadable ({type(error).__name__})")
        start, stop = self.shard_range(number)
        if not isinstance(entry, dict) or entry.get("key") != self.key or entry.get("start") != start:
            return self._stale(path, "is not this shard")
        problem = _arrays_problem(entry.get("features"), entry.get("labels"), stop - start, self.num_classes, self.dim)
        if problem:
            return self._stale(path, f"holds {problem}")
        self.dim = int(entry["features"].shape[1])
        return entry["features"].numpy(), entry["labels"].numpy()

    def complete_shards(self) -> int:
        """How many leading shards are complete and valid: extraction resumes after them."""
        for number in range(self.num_shards):
            if self._read_shard(number) is None:
                return number
        return self.num_shards

    def write_shard(self, number: int, features: torch.Tensor, labels: torch.Tensor) -> None:
        start, stop = self.shard_range(number)
        if not (features.shape[0] == labels.shape[0] == stop - start):
            raise RuntimeError("a shard holds exactly its rows")
        self.dim = int(features.shape[1])
        atomic.torch_save(
            self.shard_path(number),
            {"key": self.key, "start": start, "features": features.contiguous(), "labels": labels.contiguous()},
        )

    def write_index(self) -> None:
        if self.dim is None:
            raise RuntimeError("the index is written after the shards")
        atomic.torch_save(
            self.index_path,
            {
                "key": self.key,
                "format": INDEX_FORMAT,
                "rows": self.rows,
                "dim": self.dim,
                "shard_rows": self.shard_rows,
                "shards": [self.shard_path(k).name for k in range(self.num_shards)],
            },
        )


@dataclasses.dataclass(frozen=True)
class ExtractSettings:
    device: torch.device
    precision: str = "fp32"  # models.choices.precision_id: "fp32", "amp-fp16" or "amp-bf16"
    batch_size: int | None = None  # None: CUDA_BATCH on CUDA (halved on out-of-memory), CPU_BATCH on a CPU
    workers: int = 0
    progress: bool = False
    description: str = "features"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def start_batch(self) -> int:
        return self.batch_size or (CUDA_BATCH if self.cuda else CPU_BATCH)


@contextlib.contextmanager
def inference_numerics(settings: ExtractSettings):
    """Inference mode and autocast at the chosen precision; on CUDA, cuDNN autotuning and no TF32 under fp32."""
    dtype = {"amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}.get(settings.precision)
    if not (dtype is not None or settings.precision == "fp32"):
        raise ValueError(f"unknown precision {settings.precision!r}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        stack.enter_context(
            torch.autocast(settings.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        )
        if settings.cuda:
            cudnn = torch.backends.cudnn
            saved = cudnn.benchmark, cudnn.allow_tf32
            cudnn.benchmark = True
            cudnn.allow_tf32 = settings.precision != "fp32"
            stack.callback(lambda: (setattr(cudnn, "benchmark", saved[0]), setattr(cudnn, "allow_tf32", saved[1])))
        yield


class ChunkedForward:
    """The network on chunks of a loaded batch; on CUDA out-of-memory the chunk halves and stays halved."""

    def __init__(self, network: torch.nn.Module, settings: ExtractSettings):
        self.network, self.settings, self.chunk = network, settings, settings.start_batch()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        outputs, start = [], 0
        while start < images.shape[0]:
            out_of_memory = False
            try:
                outputs.append(self.network(images[start : start + self.chunk]).float())
            except torch.cuda.OutOfMemoryError:
                out_of_memory = True  # handled outside the except block, so the failed batch's memory is freed
            if out_of_memory:
                self._halve()
                continue
            start += outputs[-1].shape[0]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _halve(self) -> None:
        if self.chunk == 1:
            raise UserError("out of GPU memory with one image per batch; free the GPU or use --device cpu")
        self.chunk //= 2
        torch.cuda.empty_cache()
        log.info("out of GPU memory: batches of %d images from now on", self.chunk)


def make_loader(dataset, start: int, settings: ExtractSettings) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``dataset[start:]`` in order, decoded in ``settings.workers`` worker processes."""
    subset = dataset if start == 0 else Subset(dataset, range(start, len(dataset)))
    workers = settings.workers
    with warnings.catch_warnings():
        if not logging.getLogger().isEnabledFor(logging.INFO):
            # DataLoader warns when -j exceeds the CPUs it sees; decoding still works: a note under -v only.
            warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        loader = DataLoader(
            subset,
            batch_size=settings.start_batch(),
            shuffle=False,
            num_workers=workers,
            pin_memory=settings.cuda,
            persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None,  # 2 batches per worker: 512 images are 300 MB
            generator=torch.Generator().manual_seed(LOADER_SEED),
        )
        return iter(loader)


def run_backbone(
    backbone: Backbone,
    dataset,
    settings: ExtractSettings,
    start: int,
    sink: Callable[[torch.Tensor, torch.Tensor], None],
) -> None:
    """Feed ``dataset[start:]`` in order through the frozen backbone; ``sink(features, labels)`` gets each batch.

    Features arrive as float32 on the CPU, labels as int64.
    """
    network = backbone.network
    if any(p.requires_grad for p in network.parameters()):
        raise RuntimeError("the backbone must be frozen")
    if network.training:
        raise RuntimeError("the backbone must be in eval mode")
    network.to(settings.device, memory_format=torch.channels_last)
    forward = ChunkedForward(network, settings)
    with inference_numerics(settings):
        for images, labels in make_loader(dataset, start, settings):
            images = images.to(settings.device, non_blocking=True, memory_format=torch.channels_last)
            sink(forward(images).cpu(), torch.as_tensor(labels, dtype=torch.int64))


class _Progress:
    """A bar in images/s on a terminal; otherwise one line per finished shard (none when there are no shards)."""

    def __init__(self, settings: ExtractSettings, total: int, done: int = 0, shards: tuple[int, int] | None = None):
        self.bar = self.lines = None
        self.total, self.done, self.begin = total, done, done
        if not settings.progress:
            return
        if interactive():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=done, unit="img", unit_scale=True, desc=settings.description, leave=False
            )
        elif shards is not None:
            count, first = shards
            self.lines = Steps(count, f"{settings.description} shards")
            self.lines.count = first

    def batch(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def shard(self, stored: int) -> None:
        """A shard is written: ``stored`` images are in the cache."""
        if self.lines is not None:
            rate = (self.done - self.begin) / max(self.lines.elapsed, 1e-9)
            self.lines.done(f"{stored:,}/{self.total:,} images stored, {rate:.1f} images/s")

    def close(self) -> None:
        for progress in (self.bar, self.lines):
            if progress is not None:
                progress.close()


def extract_shards(
    backbone: Backbone, dataset, cache: FeatureCache, settings: ExtractSettings, first_shard: int = 0
) -> None:
    """Extract shards ``first_shard`` … into ``cache``, each written as soon as it is complete."""
    buffer_x: list[torch.Tensor] = []
    buffer_y: list[torch.Tensor] = []
    state = {"shard": first_shard, "rows": 0}
    progress = _Progress(settings, cache.rows, cache.shard_range(first_shard)[0], (cache.num_shards, first_shard))

    def flush() -> None:
        features, labels = torch.cat(buffer_x), torch.cat(buffer_y)
        if not bool(torch.isfinite(features).all()):
            start, stop = cache.shard_range(state["shard"])
            raise UserError(
                f"{backbone.arch} with {backbone.weights_name} gave NaN or infinite features for images "
                f"{start}..{stop - 1} of {settings.description}; these weights cannot serve as a "
                f"feature extractor (try --precision fp32 or other --weights)"
            )
        cache.write_shard(state["shard"], features, labels)
        buffer_x.clear()
        buffer_y.clear()
        state["shard"] += 1
        state["rows"] = 0
        progress.shard(cache.shard_range(state["shard"] - 1)[1])

    def sink(features: torch.Tensor, labels: torch.Tensor) -> None:
        progress.batch(features.shape[0])
        while features.shape[0]:
            if state["shard"] >= cache.num_shards:
                raise RuntimeError("the loader served more images than the dataset holds")
            start, stop = cache.shard_range(state["shard"])
            take = min(features.shape[0], stop - start - state["rows"])
            buffer_x.append(features[:take].clone())
            buffer_y.append(labels[:take].clone())
            state["rows"] += take
            features, labels = features[take:], labels[take:]
            if state["rows"] == stop - start:
                flush()

    try:
        run_backbone(backbone, dataset, settings, cache.shard_range(first_shard)[0], sink)
    finally:
        progress.close()
    if not (state["shard"] == cache.num_shards and not buffer_x):
        raise RuntimeError("the loader served every image once")


def cached_features(
    cache: FeatureCache, dataset, make_backbone: Callable[[], Backbone], settings: ExtractSettings
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features, labels, hit): read ``cache``, or extract what it lacks (resuming after its complete shards)."""
    cached = cache.load()
    if cached is not None:
        return cached[0], cached[1], True
    if len(dataset) != cache.rows:
        raise ValueError(f"the dataset has {len(dataset)} images, the cache was set up for {cache.rows}")
    first = cache.complete_shards()
    if first:
        log.info("feature cache %s: resuming after %d of %d complete shards", cache.index_path, first, cache.num_shards)
    with _created_folders_removed_on_failure(cache.shard_dir):
        if first < cache.num_shards:
            extract_shards(make_backbone(), dataset, cache, settings, first)
        cache.write_index()
    loaded = cache.load()
    if loaded is None:
        raise RuntimeError(f"the feature cache {cache.index_path} just written does not read back")
    return loaded[0], loaded[1], False


@contextlib.contextmanager
def _created_folders_removed_on_failure(folder: Path):
    """Create ``folder`` (and missing parents); if the block fails, remove those it created that stay empty."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds while empty
        raise


def extract(
    backbone: Backbone,
    dataset,
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    amp: bool,
    progress: bool = False,
    description: str = "features",
) -> tuple[np.ndarray, np.ndarray]:
    """All of ``dataset``'s features in memory, float32 (N, D), and labels (N,): for small sets and benchmarks.

    ``amp``: fp16 autocast on CUDA (a CPU always computes in fp32).
    """
    settings = ExtractSettings(
        device, "amp-fp16" if amp and device.type == "cuda" else "fp32", batch_size, workers, progress, description
    )
    features = torch.empty(len(dataset), backbone.feature_dim, dtype=torch.float32)
    labels = torch.empty(len(dataset), dtype=torch.int64)
    filled = 0
    bar = _Progress(settings, len(dataset))

    def sink(x: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal filled
        features[filled : filled + x.shape[0]], labels[filled : filled + x.shape[0]] = x, y
        filled += x.shape[0]
        bar.batch(x.shape[0])

    try:
        run_backbone(backbone, dataset, settings, 0, sink)
    finally:
        bar.close()
    if filled != len(dataset):
        raise RuntimeError("the loader served every image once")
    return features.numpy(), labels.numpy()
