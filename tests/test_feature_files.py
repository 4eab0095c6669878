"""--features files: every malformed kind is refused with one line naming the file and what is wrong."""

from __future__ import annotations

import hashlib
import re
import zipfile

import numpy as np
import pytest
import torch

from data import load_feature_file
from data.clusters import class_similarity, cluster_classes
from data.feature_file import file_identity
from data.feature_set import split_problem
from data.noise import make_noisy_labels
from utils.errors import UsageError, UserError


def arrays(**changes):
    rng = np.random.default_rng(0)
    base = {
        "train_features": rng.normal(size=(12, 4)).astype(np.float32),
        "train_labels": np.arange(12) % 3,
        "test_features": rng.normal(size=(6, 4)).astype(np.float32),
        "test_labels": np.arange(6) % 3,
        "class_names": np.array(["a", "b", "c"]),
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def refused(path, pattern: str) -> str:
    with pytest.raises(UserError) as error:
        load_feature_file(path)
    text = str(error.value)
    assert "\n" not in text and str(path.resolve()) in text, text
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"
    return text


def npz(tmp_path, name="f.npz", **changes):
    path = tmp_path / name
    np.savez(path, **arrays(**changes))
    return path


def test_valid_file_round_trips_with_backbone_and_unchanged_source(tmp_path):
    path = npz(tmp_path)
    loaded = load_feature_file(path)
    data = path.read_bytes()
    assert loaded.backbone == f"file-{hashlib.sha256(data).hexdigest()[:8]}" and loaded.weights == "none"
    # the source string keeps its earlier form: run identities hash it
    assert loaded.source == f"file:{path.resolve()}#{hashlib.blake2b(data, digest_size=16).hexdigest()[:16]}"
    assert file_identity(path) == (loaded.backbone, loaded.weights, loaded.source)
    assert loaded.train_features.dtype == np.float32 and loaded.train_labels.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_real_dtypes_are_accepted_as_float32(tmp_path, dtype):
    x = (np.arange(48).reshape(12, 4) % 7).astype(dtype)
    loaded = load_feature_file(npz(tmp_path, train_features=x))
    np.testing.assert_array_equal(loaded.train_features, x.astype(np.float32))


@pytest.mark.parametrize(
    "dtype, shown", [(np.complex64, "complex64"), (np.bool_, "bool"), ("U3", "<U3"), ("datetime64[s]", "datetime64")]
)
def test_non_real_features_are_refused_naming_the_dtype(tmp_path, dtype, shown):
    x = np.zeros((12, 4)).astype(dtype)
    refused(npz(tmp_path, train_features=x), rf"train_features has dtype {shown}.*real numbers")


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (np.arange(12) % 3 == 0, "train_labels has dtype bool; labels must be integers"),
        ((np.arange(12) % 3).astype(np.float64), "train_labels has dtype float64"),
        (np.arange(12).reshape(12, 1) % 3, r"1-d array \(N,\), got shape \(12, 1\)"),
        (np.arange(11) % 3, "11 labels but the features have 12 rows"),
        (np.array([-1] + [0, 1, 2] * 3 + [0, 1]), r"train_labels hold -1, outside 0\.\.2"),
        (np.array([5] + [0, 1, 2] * 3 + [0, 1]), r"train_labels hold 5, outside 0\.\.2"),
    ],
)
def test_bad_training_labels_are_refused(tmp_path, labels, pattern):
    refused(npz(tmp_path, train_labels=labels), pattern)


def test_nan_and_infinite_features_are_refused_with_a_row_count(tmp_path):
    x = arrays()["test_features"].copy()
    x[2, 1], x[4, 0] = np.nan, np.inf
    refused(npz(tmp_path, test_features=x), r"test_features contains NaN or infinite values \(in 2 of 6 rows\)")


def test_values_beyond_float32_are_refused(tmp_path):
    x = np.ones((12, 4))
    x[0, 0] = 1e300
    refused(npz(tmp_path, train_features=x), "too large for float32")


@pytest.mark.parametrize("key, rows", [("train", 0), ("test", 0)])
def test_zero_rows_are_refused(tmp_path, key, rows):
    changes = {f"{key}_features": np.zeros((rows, 4), np.float32), f"{key}_labels": np.zeros(rows, np.int64)}
    refused(npz(tmp_path, **changes), rf"{key}_features has 0 rows")


def test_zero_columns_are_refused(tmp_path):
    refused(npz(tmp_path, train_features=np.zeros((12, 0)), test_features=np.zeros((6, 0))), "0 columns")


def test_a_single_class_is_refused(tmp_path):
    path = npz(tmp_path, train_labels=np.zeros(12, np.int64), test_labels=np.zeros(6, np.int64), class_names=None)
    refused(path, "hold 1 class; at least two classes are needed")


def test_test_labels_outside_the_training_classes_are_refused(tmp_path):
    path = npz(tmp_path, train_labels=np.arange(12) % 2, test_labels=np.arange(6) % 3, class_names=None)
    refused(path, r"test_labels hold class\(es\) 2 that no training sample has")


def test_training_classes_missing_are_refused(tmp_path):
    path = npz(tmp_path, train_labels=np.arange(12) % 2 * 2, test_labels=np.arange(6) % 2 * 2, class_names=None)
    refused(path, r"no training sample has class\(es\) 1 of the 3 classes")
    refused(npz(tmp_path, "named.npz", class_names=np.array(["a", "b", "c", "d"])), r"class\(es\) 3 of the 4")


def test_mismatched_dimensions_and_missing_keys(tmp_path):
    refused(npz(tmp_path, test_features=np.zeros((6, 5), np.float32)), "dimension 4 but test_features 5")
    refused(npz(tmp_path, "lack.npz", test_labels=None), "lacks key.*test_labels")
    refused(npz(tmp_path, "flat.npz", train_features=np.zeros(12, np.float32)), r"2-d array \(N, D\)")


def test_class_names_must_be_one_dimensional(tmp_path):
    refused(npz(tmp_path, class_names=np.array([["a", "b", "c"]])), "class_names .* 1-d")


def test_empty_npz_and_pt_files(tmp_path):
    for name in ("empty.npz", "empty.pt"):
        (tmp_path / name).write_bytes(b"")
        refused(tmp_path / name, r"is empty \(0 bytes\)")


def test_non_zip_npz_is_not_called_pickled(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("train_features,train_labels\n1,2\n")
    text = refused(path, r"is not a \.npz archive \(not a zip file\)")
    assert "pickle" not in text


def test_single_npy_array_saved_as_npz(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros((3, 2)))
    refused(path, "holds a single .npy array")


def test_damaged_npz_archive(tmp_path):
    path = npz(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "damaged .npz archive")
    other = tmp_path / "other.npz"
    np.savez(other, **arrays())
    with zipfile.ZipFile(other, "a") as archive:
        archive.writestr("extra.npy", b"not an array")
    refused(other, r"damaged \.npz archive: member\(s\) extra are not \.npy arrays")


def test_object_arrays_are_refused_as_pickled(tmp_path):
    path = npz(tmp_path, class_names=np.array([object(), "b", "c"], dtype=object))
    refused(path, r"holds object arrays \(pickled Python objects\)")


def test_pt_files(tmp_path):
    tensors = {key: torch.from_numpy(value) for key, value in arrays().items() if key != "class_names"}
    good = tmp_path / "good.pt"
    torch.save({**tensors, "train_features": tensors["train_features"].to(torch.bfloat16)}, good)
    assert load_feature_file(good).num_classes == 3
    torch.save({**tensors, "train_features": torch.zeros(12, 4, dtype=torch.complex64)}, tmp_path / "complex.pt")
    refused(tmp_path / "complex.pt", "train_features has dtype complex64")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    refused(tmp_path / "list.pt", "holds a list, expected a dict of tensors")
    torch.save({key: value.numpy() for key, value in tensors.items()}, tmp_path / "numpy.pt")
    refused(tmp_path / "numpy.pt", "Python objects other than tensors")
    (tmp_path / "text.pt").write_text("hello")
    refused(tmp_path / "text.pt", "not a file torch.save wrote")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.pt", "not a file torch.save wrote")


def test_missing_path_and_suffix(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_feature_file(tmp_path / "absent.npz")
    with pytest.raises(UsageError, match="it is a folder"):
        load_feature_file(tmp_path)
    (tmp_path / "f.csv").write_text("1,2")
    refused(tmp_path / "f.csv", r"must end in \.npz or \.pt")


def test_cc_noise_runs_on_every_accepted_file_shape():
    """What the loader accepts, the noise layer can use: two classes, gaps refused, singleton clusters kept."""
    x = np.random.default_rng(1).normal(size=(8, 3))
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert split_problem(x, y, x[:2], y[:2]) is None
    clusters = cluster_classes(class_similarity(x, y, 2))
    noisy = make_noisy_labels(y, "cc", 0.5, 0, 2, clusters)
    assert noisy.transition.shape == (2, 2) and np.allclose(noisy.transition.sum(axis=1), 1)
