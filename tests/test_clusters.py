"""Class clustering: the similarity matrix against a brute-force definition, planted superclasses recovered."""

from __future__ import annotations

import numpy as np
import pytest

from data.clusters import class_similarity, cluster_classes
from data.synthetic import SyntheticConfig, make_synthetic


def brute_force_similarity(features, labels, k):
    x = features - features.mean(axis=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    m = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            block = cos[np.ix_(labels == i, labels == j)]
            if i == j:
                n = block.shape[0]
                m[i, j] = (block.sum() - np.trace(block)) / (n * (n - 1))
            else:
                m[i, j] = block.mean()
    return m


def test_similarity_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=40)
    labels[:4] = np.arange(4)
    features = rng.normal(size=(40, 7)) + labels[:, None]
    np.testing.assert_allclose(
        class_similarity(features, labels, 4), brute_force_similarity(features, labels, 4), atol=1e-12
    )


def test_clustering_recovers_planted_superclasses():
    for seed in (0, 1, 2):
        data = make_synthetic(SyntheticConfig(seed=seed))
        found = cluster_classes(class_similarity(data.train_features, data.train_labels, data.num_classes))
        planted = np.array(data.superclasses)
        # Same partition: classes share a found cluster exactly when they share a planted one.
        np.testing.assert_array_equal(found[:, None] == found[None, :], planted[:, None] == planted[None, :])


def test_cluster_ids_are_zero_based_in_order_of_appearance():
    data = make_synthetic()
    found = cluster_classes(class_similarity(data.train_features, data.train_labels, data.num_classes))
    assert found[0] == 0 and set(found) == set(range(found.max() + 1))


def test_one_and_two_classes():
    assert cluster_classes(np.ones((1, 1))).tolist() == [0]
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    ids = cluster_classes(class_similarity(x, np.array([0, 0, 1, 1]), 2))
    assert ids.tolist() in ([0, 1], [0, 0]) and ids[0] == 0


def test_a_class_without_training_samples_is_reported():
    with pytest.raises(ValueError, match=r"classes \[1\] have no training samples"):
        class_similarity(np.eye(3), np.array([0, 2, 2]), 3)
