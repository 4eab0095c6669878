"""Label-noise models: transition matrices and per-sample corruption with an explicit generator.

Transition matrices T (K, K), T[i, j] = P(noisy label j | true label i), diagonal 1 − η:
- ``sym``: η/(K − 1) on every off-diagonal entry.
- ``asym``: η/K on every off-diagonal entry plus another η/K on column (i + 1) mod K.
- ``cc`` (superclass): η/(|S| − 1) on the other classes of i's cluster S. A class alone in its
  cluster has nowhere to go and keeps its label (row e_i), so the realised rate can fall below η.

Noisy labels are drawn per sample from row T[y_i] by one uniform number each. The generator is
``numpy_rng(seed, "label-noise", ctype, η)``: a ``SeedSequence`` of the run's seed, a fixed tag,
the ctype's name and η (through its ``repr``), so a run's noisy labels can be regenerated exactly
from (seed, ctype, η) and differ between noise settings.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.noise_types import NOISE_TYPES
from utils.errors import UsageError, UserError
from utils.seeding import numpy_rng


def check_rate(eta: float) -> None:
    if not 0.0 <= eta <= 1.0 or not np.isfinite(eta):
        raise UsageError(f"--corruption must lie in [0, 1], got {eta}")


def transition_matrix(ctype: str, eta: float, num_classes: int, clusters: np.ndarray | None = None) -> np.ndarray:
    """T (K, K) float64 for noise type ``ctype`` at rate ``eta``; ``clusters`` (K,) ids are needed for ``cc``."""
    check_rate(eta)
    k = num_classes
    if k < 2:
        raise UserError(f"label noise needs at least 2 classes, got {k}")
    if ctype == "sym":
        t = np.full((k, k), eta / (k - 1))
    elif ctype == "asym":
        t = np.full((k, k), eta / k)
        t[np.arange(k), (np.arange(k) + 1) % k] += eta / k
    elif ctype == "cc":
        if clusters is None or len(clusters) != k:
            raise ValueError("cc noise needs one cluster id per class")
        clusters = np.asarray(clusters)
        same = clusters[:, None] == clusters[None, :]
        sizes = same.sum(axis=1)
        t = np.where(same, eta / np.maximum(sizes - 1, 1)[:, None], 0.0)
        t[sizes == 1] = 0.0  # a singleton cluster keeps its label
        np.fill_diagonal(t, np.where(sizes == 1, 1.0, 1.0 - eta))
    else:
        raise UsageError(f"--ctype must be one of {', '.join(NOISE_TYPES)}, got {ctype!r}")
    if ctype != "cc":
        np.fill_diagonal(t, 1.0 - eta)
    if not np.allclose(t.sum(axis=1), 1.0, atol=1e-12):
        raise RuntimeError("transition rows must sum to 1")
    if not (t >= 0).all():
        raise RuntimeError("transition probabilities must be non-negative")
    return t


def noise_generator(seed: int, ctype: str, eta: float) -> np.random.Generator:
    return numpy_rng(seed, "label-noise", ctype, float(eta))


def corrupt(labels: np.ndarray, transition: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy labels: sample i's label drawn from row ``transition[labels[i]]`` (inverse CDF, one uniform each)."""
    cdf = np.cumsum(transition, axis=1)
    cdf[:, -1] = 1.0  # guard against round-off below 1
    u = rng.random(labels.shape[0])
    rows = cdf[labels]
    noisy = (u[:, None] >= rows).sum(axis=1)
    return noisy.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class NoisyLabels:
    labels: np.ndarray  # (N,) noisy labels
    transition: np.ndarray  # (K, K) the matrix they were drawn from
    realized_rate: float  # fraction of samples whose label changed
    empirical: np.ndarray  # (K, K) row-normalised counts of (true, noisy)


def empirical_transition(true: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (true, noisy), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def make_noisy_labels(
    labels: np.ndarray, ctype: str, eta: float, seed: int, num_classes: int, clusters: np.ndarray | None = None
) -> NoisyLabels:
    transition = transition_matrix(ctype, eta, num_classes, clusters)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    noisy = corrupt(labels, transition, noise_generator(seed, ctype, eta))
    return NoisyLabels(
        labels=noisy,
        transition=transition,
        realized_rate=float(np.mean(noisy != labels)),
        empirical=empirical_transition(labels, noisy, num_classes),
    )
