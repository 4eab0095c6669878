"""Gaussian class clusters in feature space, with classes grouped into superclasses.

Class k belongs to superclass k // classes_per_super. Its mean is its superclass centre plus a
class offset; samples add isotropic noise:

    centre_s = superclass_radius · q_s  (q_1..q_S random orthonormal directions),
    mean_k = centre_{s(k)} + N(0, class_scale² I_D),   x = mean_k + N(0, noise_scale² I_D).

Orthonormal superclass directions keep the superclasses equally far apart, so the paper's
clustering (cut at 0.8 × the top merge height) finds exactly the planted ones. With the defaults a
linear head reaches about 92% clean test accuracy.

Classes of one superclass are therefore more correlated with each other than with the rest, so
``cc`` (superclass) noise, ``sym`` and ``asym`` noise all mean something, and clustering the class
means recovers the planted superclasses. Everything is drawn from ``seed``; the same seed gives the
same dataset on every machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.feature_set import FeatureSet
from utils.seeding import numpy_rng


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    num_superclasses: int = 4
    classes_per_super: int = 3
    dim: int = 64
    train_per_class: int = 100
    test_per_class: int = 100
    superclass_radius: float = 5.0
    class_scale: float = 0.35
    noise_scale: float = 1.0
    seed: int = 0

    @property
    def num_classes(self) -> int:
        return self.num_superclasses * self.classes_per_super


BACKBONE = "planted"  # features drawn directly, no feature map


def synthetic_source(config: SyntheticConfig) -> str:
    """The ``FeatureSet.source`` of ``make_synthetic(config)``: every field of the config."""
    fields = ",".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config))
    return f"synthetic({fields})"


def make_synthetic(config: SyntheticConfig = SyntheticConfig()) -> FeatureSet:
    rng = numpy_rng(config.seed, "synthetic")
    k = config.num_classes
    superclass = np.arange(k) // config.classes_per_super
    directions, _ = np.linalg.qr(rng.normal(size=(config.dim, config.num_superclasses)))
    centres = config.superclass_radius * directions.T
    means = centres[superclass] + rng.normal(0.0, config.class_scale, size=(k, config.dim))

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(k), per_class)
        noise = rng.normal(0.0, config.noise_scale, size=(labels.size, config.dim))
        return (means[labels] + noise).astype(np.float32), labels.astype(np.int64)

    x_train, y_train = draw(config.train_per_class)
    x_test, y_test = draw(config.test_per_class)
    return FeatureSet(
        name="synthetic",
        train_features=x_train,
        train_labels=y_train,
        test_features=x_test,
        test_labels=y_test,
        class_names=tuple(f"s{s}c{c % config.classes_per_super}" for c, s in enumerate(superclass)),
        source=synthetic_source(config),
        backbone=BACKBONE,
        superclasses=tuple(int(s) for s in superclass),
    )
