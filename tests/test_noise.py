"""Label-noise models: transition matrices entry by entry, sampling statistics, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from data.noise import corrupt, make_noisy_labels, noise_generator, transition_matrix
from utils.errors import UserError


def test_sym_matrix_entries():
    t = transition_matrix("sym", 0.3, 4)
    for i in range(4):
        for j in range(4):
            assert t[i, j] == pytest.approx(0.7 if i == j else 0.1)


def test_asym_matrix_entries():
    eta, k = 0.4, 4
    t = transition_matrix("asym", eta, k)
    for i in range(k):
        for j in range(k):
            expected = 1 - eta if i == j else eta / k + (eta / k if j == (i + 1) % k else 0.0)
            assert t[i, j] == pytest.approx(expected)
        assert t[i].sum() == pytest.approx(1.0)


def test_cc_matrix_entries_with_singleton_cluster():
    clusters = np.array([0, 0, 0, 1, 1, 2])  # class 5 is alone in its cluster
    eta = 0.6
    t = transition_matrix("cc", eta, 6, clusters)
    expected = np.zeros((6, 6))
    for i in range(6):
        mates = [j for j in range(6) if clusters[j] == clusters[i] and j != i]
        if not mates:
            expected[i, i] = 1.0
            continue
        expected[i, i] = 1 - eta
        expected[i, mates] = eta / len(mates)
    np.testing.assert_allclose(t, expected, atol=1e-15)
    noisy = make_noisy_labels(np.repeat(np.arange(6), 200), "cc", eta, 3, 6, clusters)
    assert (noisy.labels[np.repeat(np.arange(6), 200) == 5] == 5).all(), "a singleton class keeps its label"


@pytest.mark.parametrize("ctype", ["sym", "asym"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_extreme_rates(ctype, eta):
    t = transition_matrix(ctype, eta, 5)
    np.testing.assert_allclose(np.diag(t), 1 - eta)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan")])
def test_rate_out_of_range_is_a_user_error(eta):
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        transition_matrix("sym", eta, 4)


def test_unknown_noise_type_is_a_user_error():
    with pytest.raises(UserError, match="sym, asym, cc"):
        transition_matrix("pair", 0.2, 4)


@pytest.mark.parametrize("ctype", ["sym", "asym", "cc"])
def test_realised_rate_and_empirical_matrix_match_within_sampling_error(ctype):
    k, n = 6, 20_000
    labels = np.arange(n) % k
    clusters = np.array([0, 0, 0, 1, 1, 1])
    eta = 0.45
    noisy = make_noisy_labels(labels, ctype, eta, seed=11, num_classes=k, clusters=clusters)
    # Binomial standard error of a rate estimated from n draws; 5 SE bounds (two-sided p ≈ 6e-7).
    assert abs(noisy.realized_rate - eta) < 5 * np.sqrt(eta * (1 - eta) / n)
    per_row = n / k
    se = np.sqrt(noisy.transition * (1 - noisy.transition) / per_row)
    assert (np.abs(noisy.empirical - noisy.transition) <= 5 * se + 1e-12).all()


def test_sampling_is_per_sample_and_reproducible():
    labels = np.repeat(np.arange(4), 50)
    t = transition_matrix("sym", 0.5, 4)
    a = corrupt(labels, t, noise_generator(7, "sym", 0.5))
    b = corrupt(labels, t, noise_generator(7, "sym", 0.5))
    c = corrupt(labels, t, noise_generator(8, "sym", 0.5))
    d = corrupt(labels, t, noise_generator(7, "asym", 0.5))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any() and (a != d).any(), "seed and ctype both enter the generator"
    assert 0 < np.mean(a != labels) < 1


def test_single_class_and_out_of_range_labels():
    with pytest.raises(UserError, match="at least 2 classes"):
        make_noisy_labels(np.zeros(5, np.int64), "cc", 0.3, 0, 1, np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        make_noisy_labels(np.array([0, 1, 3]), "sym", 0.3, 0, 3)


def test_cc_with_every_class_alone_keeps_every_label():
    labels = np.repeat(np.arange(3), 10)
    noisy = make_noisy_labels(labels, "cc", 0.8, 0, 3, np.arange(3))
    np.testing.assert_array_equal(noisy.labels, labels)
    assert noisy.realized_rate == 0.0
