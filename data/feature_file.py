"""Precomputed features from any backbone: a ``.npz`` or ``.pt`` file holding a dict of arrays.

Required keys: ``train_features`` (N, D) and ``test_features`` (M, D), real numbers (float32 or
float64; integers are accepted, bool, complex and object arrays are not); ``train_labels`` (N,)
and ``test_labels`` (M,), integers in 0..K-1; optional ``class_names`` (K,) strings (without it,
K is the largest label + 1). At least one row per split, at least two classes, every class with a
training sample. Files are read without pickle (``allow_pickle=False`` / ``weights_only=True``).
Anything else is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from data.feature_set import FeatureSet, check_splits
from utils.errors import UsageError, UserError
from utils.unreadable import DAMAGED_FILE

REQUIRED_KEYS = ("train_features", "train_labels", "test_features", "test_labels")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclasses.dataclass(frozen=True)
class FileDigests:
    blake2b: str  # 32 hex digits of BLAKE2b-128: the feature source's content key (unchanged since it existed)
    sha256: str  # 64 hex digits: the backbone name is file-<first 8>


def file_digests(path: Path) -> FileDigests:
    """BLAKE2b-128 and SHA-256 of the file's bytes, in one pass."""
    blake, sha = hashlib.blake2b(digest_size=16), hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            blake.update(block)
            sha.update(block)
    return FileDigests(blake.hexdigest(), sha.hexdigest())


def file_identity(path: str | Path) -> tuple[str, str, str]:
    """(backbone, weights, source) of a features file without reading its arrays (for dry runs)."""
    path = _existing(path)
    digests = file_digests(path)
    return f"file-{digests.sha256[:8]}", "none", f"file:{path}#{digests.blake2b[:16]}"


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"--features {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as stream:
        head = stream.read(6)
    if not head:
        raise UserError(f"features file {path} is empty (0 bytes); write it with numpy.savez")
    if head.startswith(NPY_MAGIC):
        raise UserError(
            f"features file {path} holds a single .npy array, not a dict of arrays; "
            f"write it with numpy.savez(path, train_features=…, train_labels=…, …)"
        )
    if not head.startswith(ZIP_MAGIC):
        raise UserError(f"features file {path} is not a .npz archive (not a zip file); write it with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UserError(
                f"features file {path} holds object arrays (pickled Python objects), which are not "
                f"read for safety; store numbers and class names as plain numpy arrays"
            ) from None
        raise UserError(f"features file {path} is a damaged .npz archive ({error})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise UserError(f"features file {path} is a damaged .npz archive ({type(error).__name__}: {error})") from None
    foreign = [key for key, value in arrays.items() if not isinstance(value, np.ndarray)]
    if foreign:
        raise UserError(
            f"features file {path} is a damaged .npz archive: member(s) {', '.join(foreign)} "
            f"are not .npy arrays; write it with numpy.savez"
        )
    return arrays


def _read_pt(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    if path.stat().st_size == 0:
        raise UserError(f"features file {path} is empty (0 bytes); write a dict of tensors with torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if str(error).startswith("Weights only load failed"):
            raise UserError(
                f"features file {path} holds Python objects other than tensors (numpy arrays?), which are "
                f"not read for safety; save a dict of torch tensors"
            ) from None
        raise UserError(f"features file {path} is damaged ({error}); write a dict of tensors with torch.save") from None
    except DAMAGED_FILE as error:  # a damaged or foreign file: RuntimeError (bad zip), KeyError, EOFError, ...
        detail = str(error).splitlines()[0][:120] if str(error) else ""
        raise UserError(
            f"features file {path} is not a file torch.save wrote ({type(error).__name__}: {detail}); "
            f"write a dict of tensors with torch.save"
        ) from None
    if not isinstance(obj, dict):
        raise UserError(f"features file {path} holds a {type(obj).__name__}, expected a dict of tensors")
    arrays = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            problem = tensor_problem(value)
            if problem:
                raise UserError(f"features file {path}: {key} is {problem}; save plain dense CPU tensors")
            if value.dtype.is_floating_point and value.dtype not in (torch.float16, torch.float32, torch.float64):
                value = value.float()  # numpy has no bfloat16 or float8; float32 holds each of their values exactly
            arrays[str(key)] = value.numpy()
        else:
            arrays[str(key)] = np.asarray(value)
    return arrays


def tensor_problem(tensor) -> str | None:
    """What keeps a tensor read from a file from being plain numbers numpy can take, or None.

    Dense (strided), on the CPU, not quantized, not part of an autograd graph (dtypes are checked with the arrays).
    """
    import torch

    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor (not dense)"
    if tensor.device.type != "cpu":
        return f"a tensor on the {tensor.device.type} device"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.requires_grad:
        return "a tensor that requires grad (call .detach() before saving)"
    return None


def _class_names(arrays: dict[str, np.ndarray], path: Path) -> tuple[str, ...] | None:
    if "class_names" not in arrays:
        return None
    names = np.asarray(arrays["class_names"])
    if names.ndim != 1:
        raise UserError(f"class_names in {path} must be a 1-d array of strings, got shape {names.shape}")
    return tuple(str(name) for name in names)


def load_feature_file(path: str | Path) -> FeatureSet:
    path = _existing(path)
    if path.suffix == ".npz":
        arrays = _read_npz(path)
    elif path.suffix == ".pt":
        arrays = _read_pt(path)
    else:
        raise UserError(f"features file {path} must end in .npz or .pt")
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise UserError(f"features file {path} lacks key(s) {', '.join(missing)}; required: {', '.join(REQUIRED_KEYS)}")
    x_train, y_train, x_test, y_test = (arrays[key] for key in REQUIRED_KEYS)
    names = _class_names(arrays, path)
    check_splits(f"features file {path}", x_train, y_train, x_test, y_test, names)
    class_names = names or tuple(str(k) for k in range(int(max(y_train.max(), y_test.max())) + 1))
    backbone, weights, source = file_identity(path)
    return FeatureSet(
        name=path.stem,
        train_features=x_train.astype(np.float32),
        train_labels=y_train.astype(np.int64),
        test_features=x_test.astype(np.float32),
        test_labels=y_test.astype(np.int64),
        class_names=class_names,
        source=source,
        backbone=backbone,
        weights=weights,
    )
