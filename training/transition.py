"""Noise transition matrices for forward loss correction: estimated from a model's softmax, or the true one.

T (K, K), T[i, j] = P(noisy label j | true label i), rows summing to 1 — the convention of
:mod:`data.noise` and of :class:`models.losses.ForwardCorrection`.

The estimate is Patrini et al.'s (2017, "Making Deep Neural Networks Robust to Label Noise: a Loss
Correction Approach", §4 Eq. 10–11): a model trained on the noisy labels estimates p(ỹ | x); an
anchor point of class i, a sample that surely belongs to class i, has p(ỹ = j | x̄ⁱ) = T[i, j]. The
paper takes x̄ⁱ = argmax_x p(ỹ = i | x) and, against outliers, the authors' code (``NoiseEstimator``
with ``filter_outlier=True``, used for every data set but CIFAR-100) takes the sample at the 97th
percentile instead; :func:`estimate_transition` follows that code.
"""

from __future__ import annotations

import numpy as np
import torch

from data.noise import transition_matrix

ANCHOR_PERCENTILE = 97.0


def estimate_transition(
    probabilities: torch.Tensor | np.ndarray, percentile: float | None = ANCHOR_PERCENTILE
) -> np.ndarray:
    """T̂ (K, K) float64 from a model's softmax outputs (N, K) on the training rows.

    For each class i, with c = probabilities[:, i]:

    - threshold τ_i = ``np.percentile(c, percentile, method="higher")``: the value at 0-based
      position ⌈(percentile/100)·(N − 1)⌉ of c sorted ascending (a value of c, never interpolated);
    - anchor a_i = the sample with the largest c among those with c < τ_i (strictly below; the
      first such sample on ties); if no sample lies below τ_i (all equal), the first with c = τ_i;
    - row T̂[i, :] = probabilities[a_i, :], then divided by its sum (softmax rows already sum to 1;
      this only removes round-off).

    ``percentile=None`` takes a_i = argmax c (the paper's Eq. 10, no outlier filtering). Unlike the
    authors' code, which zeroes the entries ≥ τ_i of its probability array in place (so that later
    classes' anchors may see altered rows), the input is left as it is.
    """
    p = np.asarray(
        probabilities.detach().cpu() if isinstance(probabilities, torch.Tensor) else probabilities, dtype=np.float64
    )
    if not (p.ndim == 2 and p.shape[0] > 0):
        raise ValueError(f"probabilities must be (N, K) with N > 0, got {p.shape}")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probability rows must sum to 1")
    k = p.shape[1]
    t = np.empty((k, k))
    for i in range(k):
        column = p[:, i]
        if percentile is None:
            anchor = int(np.argmax(column))
        else:
            threshold = np.percentile(column, percentile, method="higher")
            below = column < threshold
            if below.any():
                anchor = int(np.argmax(np.where(below, column, -np.inf)))
            else:  # every value equals the threshold
                anchor = int(np.argmax(column >= threshold))
        t[i] = p[anchor]
    t /= t.sum(axis=1, keepdims=True)
    if not np.allclose(t.sum(axis=1), 1.0, atol=1e-12):
        raise RuntimeError("transition rows must sum to 1")
    return t


def true_transition(ctype: str, eta: float, num_classes: int, clusters: np.ndarray | None = None) -> np.ndarray:
    """The matrix the noisy labels were drawn from (:func:`data.noise.transition_matrix`): the oracle ``fc-true``."""
    return transition_matrix(ctype, eta, num_classes, clusters)
