"""A plain-text summary of a dataset and its label noise: sizes, feature shape, clusters, transition matrices."""

from __future__ import annotations

import numpy as np

from data.clusters import groups
from data.feature_set import FeatureSet
from data.noise import NoisyLabels


def format_matrix(matrix: np.ndarray, digits: int = 3, limit: int = 12) -> str:
    """Rows of a (K, K) matrix, truncated to ``limit`` rows and columns for large K."""
    k = matrix.shape[0]
    shown = matrix[:limit, :limit]
    lines = ["  " + " ".join(f"{value:.{digits}f}" for value in row) + (" …" if k > limit else "") for row in shown]
    if k > limit:
        lines.append(f"  … ({k} × {k}, first {limit} rows and columns shown)")
    return "\n".join(lines)


def describe_features(features: FeatureSet) -> str:
    counts = np.bincount(features.train_labels, minlength=features.num_classes)
    return "\n".join(
        [
            f"dataset: {features.name}  ({features.source})",
            f"train: {features.train_features.shape[0]} samples, test: {features.test_features.shape[0]} samples, "
            f"features: {features.dim}-d, classes: {features.num_classes}",
            f"train samples per class: min {counts.min()}, max {counts.max()}",
        ]
    )


def describe_clusters(cluster_ids: np.ndarray, class_names: tuple[str, ...], cut: float) -> str:
    members = groups(cluster_ids)
    lines = [f"clusters of classes ({len(members)}, cut at {cut} × the top merge height):"]
    lines += [f"  {i}: " + ", ".join(class_names[k] for k in group) for i, group in enumerate(members)]
    return "\n".join(lines)


def describe_noise(ctype: str, eta: float, seed: int, noisy: NoisyLabels) -> str:
    return "\n".join(
        [
            f"noise {ctype}, η = {eta}, seed {seed}: realised corruption {noisy.realized_rate:.4f}",
            "transition matrix T[true, noisy]:",
            format_matrix(noisy.transition),
            "empirical transition matrix (row-normalised counts):",
            format_matrix(noisy.empirical),
        ]
    )
