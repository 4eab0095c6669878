"""The 0-SD / 1-SD hard / 1-SD soft comparison on two classes of real (or hand-made) features."""

from __future__ import annotations

import numpy as np
import pytest

from data import FeatureSet
from gmm.real import MODELS, binary_task, check_classes, compare, load_features
from gmm.tune import TuneOptions
from utils.atomic import savez
from utils.errors import UserError


def toy_features(per_class: int = 40, dim: int = 6, classes: int = 3, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    x = rng.normal(size=(labels.size, dim)) + labels[:, None]
    x[:, -1] = 7.0  # a constant feature must survive standardisation
    return FeatureSet(name="toy", train_features=x.astype(np.float32), train_labels=labels.astype(np.int64),
                      test_features=x[::2].astype(np.float32), test_labels=labels[::2].astype(np.int64),
                      class_names=tuple(f"c{k}" for k in range(classes)), source="toy")


def test_binary_task_is_balanced_noisy_per_class_and_standardised():
    features = toy_features()
    task = binary_task(features, (2, 0), M=40, validation=0.5, theta=0.25, rng=np.random.default_rng(1))
    assert task.train_X.shape == (40, 6) and task.val_X.shape == (20, 6)
    # class 2 is label 0, class 0 is label 1; exactly round(θ·n) labels flipped per class and split
    true_train = np.repeat([0.0, 1.0], 20)
    assert np.sum(task.train_labels != true_train) == 2 * round(0.25 * 20)
    assert np.sum(task.val_labels != np.repeat([0.0, 1.0], 10)) == 2 * round(0.25 * 10)
    np.testing.assert_allclose(task.train_X[:, :5].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(task.train_X[:, :5].std(axis=0), 1, atol=1e-9)
    assert np.all(task.train_X[:, 5] == 0)
    # training and validation rows are different samples; the test split is clean and has both classes
    assert not (set(map(tuple, task.train_X.round(9))) & set(map(tuple, task.val_X.round(9))))
    assert set(np.unique(task.test_labels)) == {0.0, 1.0}
    assert task.test_X.shape[0] == np.isin(features.test_labels, (2, 0)).sum()


@pytest.mark.parametrize("classes, M, message", [
    ((1, 1), 20, "two different class indices"),
    ((0, 3), 20, "two different class indices"),
    ((0, 1), 80, "use --M"),
])
def test_bad_class_choices_are_user_errors(classes, M, message):
    with pytest.raises(UserError, match=message):
        check_classes(toy_features(), classes, M, validation=0.25)


def test_digits_three_against_eight():
    features = load_features("digits", None)
    check_classes(features, (3, 8), 160, 0.25)
    task = binary_task(features, (3, 8), M=160, validation=0.25, theta=0.2, rng=np.random.default_rng(0))
    results = compare(task, "bce", "learn", TuneOptions(grid_points=5))
    assert tuple(results) == MODELS
    for outcome in results.values():
        assert 0.0 <= outcome["error"] < 0.3  # far better than chance on a clean test split
        assert 1e-3 <= outcome["lambda"] <= 1e3
    assert results["1-SD hard"]["beta"] is None and results["1-SD soft"]["beta"] is not None


def test_features_from_a_file(tmp_path):
    features = toy_features()
    path = tmp_path / "toy.npz"
    savez(path, train_features=features.train_features, train_labels=features.train_labels,
          test_features=features.test_features, test_labels=features.test_labels)
    loaded = load_features(None, str(path))
    np.testing.assert_array_equal(loaded.train_features, features.train_features)
    task = binary_task(loaded, (0, 1), M=30, validation=0.3, theta=0.1, rng=np.random.default_rng(2))
    results = compare(task, "mse", "fix", TuneOptions(grid_points=4))
    assert all(0.0 <= outcome["error"] <= 1.0 for outcome in results.values())
