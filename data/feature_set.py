"""The one shape every dataset takes after loading: frozen features and labels, samples as rows."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Train and test features of one dataset, with what produced them.

    ``source`` is a short, stable description of everything that determines the features
    (dataset, backbone, weights, transform, or a file's content hash); run folders hash it.
    ``superclasses`` is the planted class grouping where one is known (the synthetic set), else None.
    """

    name: str
    train_features: np.ndarray  # (N, D) float32
    train_labels: np.ndarray  # (N,) int64
    test_features: np.ndarray  # (M, D) float32
    test_labels: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]
    source: str
    superclasses: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        n, d = self.train_features.shape
        assert self.train_labels.shape == (n,), "train labels must be (N,)"
        assert self.test_features.ndim == 2 and self.test_features.shape[1] == d, "test features must be (M, D)"
        assert self.test_labels.shape == (self.test_features.shape[0],), "test labels must be (M,)"
        assert len(self.class_names) == self.num_classes, "one class name per class"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return int(self.train_features.shape[1])
