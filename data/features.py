"""Frozen-feature extraction with a cache keyed by everything that changes the features.

The key holds dataset, split, architecture depth, weights, transform and precision (and, for a
user's image folder, its path and content hash). The cache file name carries a hash of the key and
the file stores the key itself, so a hit is never stale; a truncated or corrupt file is detected
on load and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.backbone import Backbone
from utils import atomic

log = logging.getLogger(__name__)


def cache_path(feature_root: Path, key: dict) -> Path:
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=6).hexdigest()
    return Path(feature_root) / f"{key['dataset']}-{key['split']}-resnet{key['depth']}-{key['precision']}-{digest}.pt"


def _read_cache(path: Path, key: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (features, labels) if ``path`` holds a complete entry for exactly ``key``, else None."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        features, labels = entry["features"], entry["labels"]
        valid = (
            entry["key"] == key
            and features.dtype == torch.float32 and features.ndim == 2
            and labels.dtype == torch.int64 and labels.shape == (features.shape[0],)
            and bool(torch.isfinite(features).all())
        )
    except Exception as error:  # a truncated zip raises RuntimeError, a wrong layout KeyError/TypeError
        log.warning("feature cache %s is unreadable (%s); rebuilding it", path, type(error).__name__)
        return None
    if not valid:
        log.warning("feature cache %s does not match its key; rebuilding it", path)
        return None
    return features.numpy(), labels.numpy()


@torch.no_grad()
def extract(backbone: Backbone, dataset: Dataset, device: torch.device, *, batch_size: int, workers: int,
            amp: bool, progress: bool, description: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen backbone over ``dataset`` in order; returns float32 features (N, D) and labels (N,).

    On CUDA: pinned memory, channels_last and float16 autocast when ``amp``; features are stored as float32.
    """
    network = backbone.network
    assert not any(p.requires_grad for p in network.parameters()), "the backbone must be frozen"
    assert not network.training, "the backbone must be in eval mode"
    cuda = device.type == "cuda"
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    network = network.to(device, memory_format=memory_format)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=cuda,
                        persistent_workers=False)
    features = torch.empty(len(dataset), backbone.feature_dim, dtype=torch.float32)
    labels = torch.empty(len(dataset), dtype=torch.int64)
    start = 0
    for images, targets in tqdm(loader, desc=description, unit="batch", disable=not progress, leave=False):
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and cuda):
            output = network(images)
        stop = start + output.shape[0]
        features[start:stop] = output.float().cpu()
        labels[start:stop] = torch.as_tensor(targets, dtype=torch.int64)
        start = stop
    assert start == len(dataset), "the loader served every image once"
    return features.numpy(), labels.numpy()


def cached_features(feature_root: Path, key: dict, compute: Callable[[], tuple[np.ndarray, np.ndarray]]
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features, labels, hit): read the entry for ``key`` or compute it and store it atomically."""
    path = cache_path(feature_root, key)
    cached = _read_cache(path, key)
    if cached is not None:
        log.info("feature cache hit: %s", path)
        return cached[0], cached[1], True
    features, labels = compute()
    atomic.torch_save(path, {"key": key, "features": torch.from_numpy(features), "labels": torch.from_numpy(labels)})
    log.info("features cached: %s", path)
    return features, labels, False
