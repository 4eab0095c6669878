"""Per-round statistics on the training instances: accuracy and the softmax values of Figure 3b.

A sample is clean when its given label equals its true class, noisy otherwise. Empty groups give NaN.
"""

from __future__ import annotations

import numpy as np

GROUPS = ("clean", "noisy")
ACCURACY_COLUMNS = ("clean", "noisy", "all")
KINDS = ("true", "given", "other")


def _percent(hits: np.ndarray) -> float:
    return float(100.0 * hits.mean()) if hits.size else float("nan")


def accuracy(outputs: np.ndarray, labels: np.ndarray, given: np.ndarray) -> np.ndarray:
    """(3,) percentages of argmax(outputs) == true class on clean, noisy and all samples.

    ``outputs`` (N, K); ``labels`` (true) and ``given`` (noisy) (N,). Ties go to the lower class.
    """
    hits = outputs.argmax(axis=1) == labels
    clean = given == labels
    return np.array([_percent(hits[clean]), _percent(hits[~clean]), _percent(hits)])


def undetermined(outputs: np.ndarray, tol: float) -> int:
    """How many samples have their two largest outputs within ``tol`` of each other.

    A solve to residual ``tol`` does not resolve differences that small, so those samples' argmax (and
    their share of the accuracy) reflects rounding: it happens when the outputs are uniform to
    machine precision, e.g. for a very large lambda or after many rounds.
    """
    top = np.sort(outputs, axis=1)[:, -2:]
    return int(np.sum(top[:, 1] - top[:, 0] <= tol))


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def softmax_statistics(outputs: np.ndarray, labels: np.ndarray, given: np.ndarray) -> np.ndarray:
    """(2, 3, 2): [clean|noisy, true|given|other label, mean|std] of the output values.

    ``true``: Y[i, y_i]; ``given``: Y[i, given_i] (equal to ``true`` for clean samples); ``other``:
    every Y[i, k] with k neither the true nor the given class, pooled over samples and classes.
    """
    rows = np.arange(labels.size)
    other = np.ones_like(outputs, dtype=bool)
    other[rows, labels] = False
    other[rows, given] = False
    stats = np.empty((len(GROUPS), len(KINDS), 2))
    for g, member in enumerate((given == labels, given != labels)):
        stats[g, 0] = _mean_std(outputs[rows[member], labels[member]])
        stats[g, 1] = _mean_std(outputs[rows[member], given[member]])
        stats[g, 2] = _mean_std(outputs[member][other[member]])
    return stats
