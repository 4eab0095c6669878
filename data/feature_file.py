"""Precomputed features from any backbone: a ``.npz`` or ``.pt`` file holding a dict of arrays.

Required keys: ``train_features`` (N, D) float, ``train_labels`` (N,) int, ``test_features``
(M, D) float, ``test_labels`` (M,) int; optional ``class_names`` (K,) strings. Files are read
without pickle (``allow_pickle=False`` / ``weights_only=True``). Labels must lie in 0..K-1.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from data.feature_set import FeatureSet
from utils.errors import UsageError, UserError

REQUIRED_KEYS = ("train_features", "train_labels", "test_features", "test_labels")


def file_digest(path: Path, length: int = 16) -> str:
    """BLAKE2b of the file's bytes (hex, ``length`` characters): a content key for caches and run hashes."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise UserError(f"cannot read features file {path}: {error}; write it with numpy.savez") from None
    if path.suffix == ".pt":
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a bad file
            raise UserError(f"cannot read features file {path}: {error}; write a dict of tensors with torch.save") from None
        if not isinstance(obj, dict):
            raise UserError(f"features file {path} holds a {type(obj).__name__}, expected a dict of tensors")
        return {key: value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value) for key, value in obj.items()}
    raise UserError(f"features file {path} must end in .npz or .pt")


def _as_labels(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise UserError(f"{key} in {path} must be a 1-d integer array, got shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int64)


def _as_features(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{key} in {path} must be a 2-d float array (N, D), got shape {array.shape} dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise UserError(f"{key} in {path} contains NaN or infinite values")
    return array.astype(np.float32)


def load_feature_file(path: str | Path) -> FeatureSet:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"features file {path} does not exist")
    arrays = _read_arrays(path)
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise UserError(f"features file {path} lacks key(s) {', '.join(missing)}; required: {', '.join(REQUIRED_KEYS)}")
    x_train = _as_features(arrays["train_features"], "train_features", path)
    x_test = _as_features(arrays["test_features"], "test_features", path)
    y_train = _as_labels(arrays["train_labels"], "train_labels", path)
    y_test = _as_labels(arrays["test_labels"], "test_labels", path)
    if x_train.shape[0] != y_train.shape[0]:
        raise UserError(f"{path}: train_features has {x_train.shape[0]} rows but train_labels has {y_train.shape[0]}")
    if x_test.shape[0] != y_test.shape[0]:
        raise UserError(f"{path}: test_features has {x_test.shape[0]} rows but test_labels has {y_test.shape[0]}")
    if x_train.shape[1] != x_test.shape[1]:
        raise UserError(f"{path}: train_features has dimension {x_train.shape[1]} but test_features {x_test.shape[1]}")
    if "class_names" in arrays:
        class_names = tuple(str(name) for name in np.asarray(arrays["class_names"]).reshape(-1))
    else:
        class_names = tuple(str(k) for k in range(int(max(y_train.max(), y_test.max())) + 1))
    k = len(class_names)
    for key, labels in (("train_labels", y_train), ("test_labels", y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise UserError(f"{key} in {path} must lie in 0..{k - 1} (one per class name)")
    return FeatureSet(
        name=path.stem,
        train_features=x_train,
        train_labels=y_train,
        test_features=x_test,
        test_labels=y_test,
        class_names=class_names,
        source=f"file:{path}#{file_digest(path)}",
    )
