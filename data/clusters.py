"""Superclass clusters of classes from training features, as the paper's ``cc`` noise uses them.

1. Centre the training features and L2-normalise each row.
2. M[i, j] = mean cosine similarity between samples of class i and samples of class j, self-pairs
   excluded (so M[i, i] averages over distinct pairs within class i).
3. ``scipy.cluster.hierarchy.linkage(1 - M, method="complete")`` with the K rows of 1 - M as
   observation vectors (Euclidean distances between rows: what the reference's call does, not a
   precomputed-distance linkage), cut with ``fcluster`` at ``cut`` × the largest merge height
   (0.8 for noise; the reference's statistics table uses 0.9).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster import hierarchy

NOISE_CUT = 0.8
TABLE_CUT = 0.9


def centred_unit_rows(rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(rows − mean) with each row scaled to unit L2 norm, (n, D) float64; a zero row stays zero."""
    x = np.asarray(rows, dtype=np.float64) - mean
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def class_similarity(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """M (K, K): mean cosine similarity of centred features between classes, self-pairs excluded.

    Computed from per-class sums of unit vectors s_k: M[i, j] = s_i·s_j / (n_i n_j) for i ≠ j and
    M[i, i] = (‖s_i‖² − Σ‖x‖²) / (n_i (n_i − 1)). A class with one sample gets M[i, i] = 1.
    """
    x = np.asarray(features, dtype=np.float64)
    x = centred_unit_rows(x, x.mean(axis=0))
    one_hot = np.zeros((x.shape[0], num_classes))
    one_hot[np.arange(x.shape[0]), labels] = 1.0
    counts = one_hot.sum(axis=0)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no training samples")
    sums = one_hot.T @ x  # (K, D)
    self_sq = one_hot.T @ (x * x).sum(axis=1)  # Σ‖x‖² per class (1 per nonzero row)
    similarity = (sums @ sums.T) / np.outer(counts, counts)
    pairs = counts * (counts - 1)
    diagonal = np.where(pairs > 0, (np.einsum("kd,kd->k", sums, sums) - self_sq) / np.maximum(pairs, 1), 1.0)
    similarity[np.diag_indices(num_classes)] = diagonal
    return similarity


def linkage_of(similarity: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # 1 − M can look like a square distance matrix to scipy; its rows are observations on purpose (see above).
        warnings.simplefilter("ignore", hierarchy.ClusterWarning)
        return hierarchy.linkage(1.0 - similarity, method="complete")


def cluster_classes(similarity: np.ndarray, cut: float = NOISE_CUT) -> np.ndarray:
    """Cluster id (0-based, in order of first appearance) for each class; one class is one cluster."""
    if similarity.shape[0] < 2:
        return np.zeros(similarity.shape[0], dtype=np.int64)  # linkage needs two observations
    tree = linkage_of(similarity)
    raw = hierarchy.fcluster(tree, cut * tree[:, 2].max(), criterion="distance")
    _, first = np.unique(raw, return_index=True)
    order = {label: rank for rank, label in enumerate(raw[np.sort(first)])}
    return np.array([order[label] for label in raw], dtype=np.int64)


def groups(cluster_ids: np.ndarray) -> list[list[int]]:
    """Classes of each cluster, clusters in id order."""
    return [np.flatnonzero(cluster_ids == c).tolist() for c in range(int(cluster_ids.max()) + 1)]
