"""The dataset registry: digits, synthetic, feature files and the offline download errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data import DataOptions, load_feature_file, load_feature_set
from data.synthetic import SyntheticConfig, make_synthetic
from tests.conftest import run_script
from utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_digits_split_is_stratified_and_reproducible():
    a, b = load_feature_set("digits"), load_feature_set("digits")
    np.testing.assert_array_equal(a.train_features, b.train_features)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert a.train_features.shape[0] + a.test_features.shape[0] == 1797
    assert a.num_classes == 10 and a.dim == 64
    assert (a.backbone, a.weights) == ("identity", "none")
    train_share = np.bincount(a.train_labels) / len(a.train_labels)
    test_share = np.bincount(a.test_labels) / len(a.test_labels)
    np.testing.assert_allclose(train_share, test_share, atol=0.005)
    assert np.isfinite(a.train_features).all() and np.isfinite(a.test_features).all()
    np.testing.assert_allclose(a.train_features.mean(axis=0), 0.0, atol=1e-5)
    std = a.train_features.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0)), "standardised, zero-variance pixels left at 0"
    assert (std == 0).any(), "digits has constant pixels: the guard is exercised"


def test_synthetic_is_deterministic_by_seed():
    a, b, c = make_synthetic(), make_synthetic(), make_synthetic(SyntheticConfig(seed=1))
    np.testing.assert_array_equal(a.train_features, b.train_features)
    assert not np.array_equal(a.train_features, c.train_features)
    assert a.num_classes == 12 and len(set(a.superclasses)) == 4
    assert (a.backbone, a.weights) == ("planted", "none")


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(UserError, match="digits, synthetic, cifar10"):
        load_feature_set("mnist")


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "train_features": rng.normal(size=(20, 5)).astype(np.float32),
        "train_labels": np.arange(20) % 3,
        "test_features": rng.normal(size=(6, 5)).astype(np.float32),
        "test_labels": np.arange(6) % 3,
        "class_names": np.array(["a", "b", "c"]),
    }


def test_feature_file_round_trip_npz_and_pt(tmp_path):
    arrays = _arrays()
    np.savez(tmp_path / "f.npz", **arrays)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items() if k != "class_names"}
    torch.save(tensors, tmp_path / "f.pt")
    for path in (tmp_path / "f.npz", tmp_path / "f.pt"):
        loaded = load_feature_file(path)
        np.testing.assert_array_equal(loaded.train_features, arrays["train_features"])
        np.testing.assert_array_equal(loaded.test_labels, arrays["test_labels"])
        assert loaded.num_classes == 3
    assert load_feature_file(tmp_path / "f.npz").class_names == ("a", "b", "c")
    assert load_feature_file(tmp_path / "f.npz").source != load_feature_file(tmp_path / "f.pt").source
    assert load_feature_file(tmp_path / "f.npz").backbone != load_feature_file(tmp_path / "f.pt").backbone


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("test_labels"), "lacks key"),
        (lambda a: a.update(train_labels=np.arange(19) % 3), "19 labels but the features have 20 rows"),
        (lambda a: a.update(test_features=np.zeros((6, 4), np.float32)), "dimension"),
        (lambda a: a.update(train_features=np.zeros(20, np.float32)), "2-d"),
        (lambda a: a.update(train_labels=np.arange(20) % 4), r"outside 0\.\.2"),
    ],
)
def test_feature_file_errors_are_one_line(tmp_path, change, message):
    arrays = _arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_feature_file(tmp_path / "bad.npz")


def test_feature_file_refuses_pickled_objects(tmp_path):
    arrays = _arrays()
    arrays["class_names"] = np.array([object(), "b", "c"], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(UserError, match="holds object arrays"):
        load_feature_file(tmp_path / "pickled.npz")


@pytest.mark.parametrize(
    "name, folder",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("caltech256", "256_ObjectCategories"),
        ("flowers102", "flowers-102"),
        ("food101", "food-101"),
    ],
)
def test_missing_dataset_names_the_folder_and_layout(tmp_path, name, folder):
    options = DataOptions(data_root=tmp_path / "empty", download="never")
    with pytest.raises(UserError) as error:
        load_feature_set(name, options)
    text = str(error.value)
    assert name in text and str(tmp_path / "empty") in text and folder in text and "\n" not in text


def test_stanfordcars_says_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match="cannot download StanfordCars"):
        load_feature_set("stanfordcars", DataOptions(data_root=tmp_path, download="auto"))


@pytest.mark.slow
def test_cli_offline_error_is_one_line_without_traceback(tmp_path):
    result = run_script(
        "train_linear.py",
        "--summary",
        "-d",
        "cifar100",
        "--download",
        "never",
        "--data-root",
        str(tmp_path / "nothing"),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar-100-python" in lines[0] and "Traceback" not in result.stderr


def test_registry_lists_every_image_source():
    from data.images import IMAGE_SOURCES
    from data.registry import IMAGE_DATASETS

    assert set(IMAGE_DATASETS) == set(IMAGE_SOURCES)


def _fake_caltech(root, folder, classes, excluded, per_class=5):
    rng = np.random.default_rng(0)
    from PIL import Image

    for index, name in reversed(list(enumerate([*classes, excluded]))):  # creation order must not matter
        target = root / folder / name
        target.mkdir(parents=True)
        for i in reversed(range(per_class)):
            mode, shape = ("L", (9, 7)) if index == 0 else ("RGB", (9, 7, 3))
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(target / f"image_{i + 1:04d}.jpg")


@pytest.mark.parametrize(
    "name, folder, classes, excluded, names",
    [
        (
            "caltech101",
            "caltech101/101_ObjectCategories",
            ["accordion", "airplanes", "anchor"],
            "BACKGROUND_Google",
            ("accordion", "airplanes", "anchor"),
        ),
        (
            "caltech256",
            "caltech256/256_ObjectCategories",
            ["001.ak47", "002.american-flag", "003.backpack"],
            "257.clutter",
            ("ak47", "american-flag", "backpack"),
        ),
    ],
)
def test_caltech_split_is_over_the_sorted_list_without_the_background_class(
    tmp_path, name, folder, classes, excluded, names
):
    from sklearn.model_selection import train_test_split

    from data.images import IMAGE_SOURCES

    _fake_caltech(tmp_path, folder, classes, excluded)
    splits = IMAGE_SOURCES[name].build(tmp_path, False)
    assert splits.class_names == names
    assert len(splits.train) == 12 and len(splits.test) == 3
    ordered = [tmp_path / folder / c / f"image_{i:04d}.jpg" for c in classes for i in range(1, 6)]
    expected_train, expected_test = train_test_split(ordered, test_size=0.2, random_state=42)
    assert splits.train.paths == expected_train and splits.test.paths == expected_test
    image, label = splits.test[0]
    assert image.shape == (3, 224, 224) and label == classes.index(expected_test[0].parent.name)


def test_feature_set_checks_survive_python_minus_O():
    # python -O strips asserts: a feature set whose labels do not match its rows must still be refused.
    code = (
        "import numpy as np\n"
        "from data.feature_set import FeatureSet\n"
        "x = np.zeros((3, 2), np.float32)\n"
        "try:\n"
        "    FeatureSet('t', x, np.zeros(2, np.int64), x, np.zeros(3, np.int64), ('a', 'b'), 'test')\n"
        "except ValueError as error:\n"
        "    print('refused:', error)\n"
        "print('asserts on:', __debug__)\n"
    )
    found = subprocess.run(
        [sys.executable, "-O", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert found.stdout.splitlines() == ["refused: train labels must be (N,)", "asserts on: False"]


def test_a_failed_download_leaves_no_folder_it_made(tmp_path):
    from data.images import IMAGE_SOURCES, _open
    from utils.errors import UserError

    def attempt(root: Path, busy: bool) -> None:
        def failing_download(download: bool):
            for folder in (root / "caltech101" / "101_ObjectCategories", root / "flowers-102" / "jpg"):
                folder.mkdir(parents=True, exist_ok=True)
            if busy:  # a folder another download is filling: never ours to remove
                (root / "food-101").mkdir()
                (root / "food-101" / "part.tar.gz").write_bytes(b"x")
            raise RuntimeError("no network")

        with pytest.raises(UserError, match="caltech101: download failed"):
            _open("caltech101", IMAGE_SOURCES["caltech101"], root, True, failing_download)

    def left(root: Path) -> list[str]:
        return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))

    root = tmp_path / "datasets"
    (root / "flowers-102").mkdir(parents=True)  # there before: stays
    attempt(root, busy=True)
    assert left(root) == ["flowers-102", "food-101", "food-101/part.tar.gz"]
    attempt(tmp_path / "new", busy=False)
    assert not (tmp_path / "new").exists(), "a data root the attempt created goes too"


def test_decoding_workers_default_to_the_available_cpus_at_most_four(monkeypatch):
    import os

    from data.registry import DataOptions, default_workers

    for cpus, workers in ((1, 1), (2, 2), (4, 4), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert default_workers() == workers and DataOptions().workers == workers
