"""Feature correlations: statistics against brute force, the Gram sample and spectrum, the CLI's outputs and errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import feature_correlation_map
from analysis.correlation import (class_correlation, group_means, gram_spectrum, sample_instances, sample_per_class,
                                  statistics)
from data.synthetic import SyntheticConfig, make_synthetic

PLANTED = SyntheticConfig(num_superclasses=2, classes_per_super=3, dim=16, train_per_class=8, test_per_class=2)


def brute_force_stats(features: np.ndarray, labels: np.ndarray, superclass: np.ndarray) -> tuple[float, float, float]:
    """Means of cosines over instance pairs, pair by pair, then over class pairs, straight from the definitions."""
    mean = features.mean(axis=0)

    def cosine(a: int, b: int) -> float:
        u, v = features[a] - mean, features[b] - mean
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    k = int(labels.max()) + 1
    m = np.zeros((k, k))
    for i, j in itertools.product(range(k), repeat=2):
        pairs = [cosine(a, b) for a in np.flatnonzero(labels == i) for b in np.flatnonzero(labels == j) if a != b]
        m[i, j] = sum(pairs) / len(pairs)
    intra = [m[i, i] for i in range(k)]
    within = [m[i, j] for i in range(k) for j in range(k) if i != j and superclass[i] == superclass[j]]
    between = [m[i, j] for i in range(k) for j in range(k) if superclass[i] != superclass[j]]
    return float(np.mean(intra)), float(np.mean(within)), float(np.mean(between))


def save_planted(path):
    data = make_synthetic(PLANTED)
    np.savez(path, train_features=data.train_features, train_labels=data.train_labels,
             test_features=data.test_features, test_labels=data.test_labels, class_names=np.array(data.class_names))
    return data


def test_statistics_match_brute_force_on_planted_superclasses():
    data = make_synthetic(PLANTED)
    correlation = class_correlation(data)
    planted = np.array(data.superclasses)
    np.testing.assert_array_equal(correlation.clusters[:, None] == correlation.clusters[None, :],
                                  planted[:, None] == planted[None, :])
    row = statistics(data, correlation)
    assert (row.num_classes, row.num_train, row.dim, row.num_clusters) == (6, 48, 16, 2)
    expected = brute_force_stats(data.train_features.astype(np.float64), data.train_labels, planted)
    np.testing.assert_allclose((row.intra_class, row.intra_superclass, row.inter_superclass), expected, atol=1e-10)
    assert row.intra_class > row.intra_superclass > row.inter_superclass


def test_group_means_without_pairs_are_nan_and_shown_as_dashes():
    m = np.array([[1.0, 0.2], [0.2, 0.5]])
    intra, within, between = group_means(m, np.array([0, 1]))
    assert intra == 0.75 and math.isnan(within) and between == 0.2
    assert math.isnan(group_means(m, np.array([0, 0]))[2])


def test_gram_sample_is_grouped_by_class_in_the_given_order():
    labels = np.array([2, 0, 1, 2, 0, 1, 2, 0, 2, 1, 0, 2])  # class 1 has 3 rows, fewer than per_class
    order = np.array([2, 0, 1])
    index = sample_per_class(labels, 4, np.random.default_rng(0), order)
    assert len(set(index.tolist())) == index.size
    np.testing.assert_array_equal(labels[index], [2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1])
    again = sample_per_class(labels, 4, np.random.default_rng(0), order)
    np.testing.assert_array_equal(index, again)


def test_gram_entries_are_cosines_of_centred_features():
    data = make_synthetic(PLANTED)
    order = np.arange(data.num_classes)[::-1]
    sample = sample_instances(data, 3, seed=5, class_order=order)
    position = {k: i for i, k in enumerate(order)}
    ranks = np.array([position[k] for k in sample.labels])
    assert np.all(np.diff(ranks) >= 0) and sample.labels.size == 3 * data.num_classes
    x = data.train_features.astype(np.float64) - data.train_features.astype(np.float64).mean(axis=0)
    rows = x[sample.index]
    expected = rows @ rows.T / np.outer(np.linalg.norm(rows, axis=1), np.linalg.norm(rows, axis=1))
    np.testing.assert_allclose(sample.gram, expected, atol=1e-12)
    assert not np.array_equal(sample.index, sample_instances(data, 3, seed=6, class_order=order).index)


@pytest.mark.parametrize("n, d", [(30, 8), (8, 30)])
def test_spectrum_matches_numpy_eigvalsh(n, d):
    unit = np.random.default_rng(n).normal(size=(n, d))
    expected = np.linalg.eigvalsh(unit @ unit.T)[::-1]
    eigenvalues = gram_spectrum(unit)
    assert eigenvalues.shape == (n,) and np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-9)


def test_cli_writes_one_table_and_figures_per_dataset(tmp_path, capsys):
    data = save_planted(tmp_path / "planted.npz")
    out = tmp_path / "reports"
    assert feature_correlation_map.main(["-d", "synthetic", "--features", str(tmp_path / "planted.npz"),
                                         "--per-class", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = (out / "correlation_stats.md").read_text()
    assert table.strip() in printed
    lines = table.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| synthetic |") and lines[3].startswith("| planted |")
    cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    expected = brute_force_stats(data.train_features.astype(np.float64), data.train_labels, np.array(data.superclasses))
    assert cells[1:5] == ["6", "48", "16", "2"]
    np.testing.assert_allclose([float(c) for c in cells[5:]], expected, atol=5e-5)
    for name in ("synthetic", "planted"):
        for figure in ("class-correlation", "dendrogram", "gram", "gram-spectrum"):
            for fmt in ("png", "pdf"):
                path = out / f"{name}-{figure}.{fmt}"
                assert path.is_file() and path.stat().st_size > 1000, path
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("args, message", [
    (["-d", "nosuch"], "unknown dataset 'nosuch'"),
    (["--features", "missing.npz"], "does not exist"),
    (["-d", "synthetic", "--per-class", "1"], "--per-class must be at least 2"),
    (["-d", "synthetic", "synthetic"], "named 'synthetic'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert feature_correlation_map.main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()
