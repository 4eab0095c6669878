"""Per-stage metrics beyond accuracy: calibration on the test set, label correction on the training set.

All shares are percentages, like the engine's accuracies. Inputs are rows (samples first), as
numpy arrays or tensors on any device.

- :func:`expected_calibration_error`: top-label ECE (Guo et al. 2017, "On Calibration of Modern
  Neural Networks", Eq. 3) with equal-width confidence bins.
- :func:`label_correction`: how a model's predictions on its own training rows relate to the true
  and the noisy labels — the mechanism the paper claims (label averaging corrects noisy labels).
- :func:`candidate_coverage`: for the PLL student, how often the true class is in the candidate set.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

ECE_BINS = 15


def _numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _percent(hits: np.ndarray) -> float:
    return 100.0 * float(hits.mean()) if hits.size else float("nan")


def expected_calibration_error(probabilities, labels, bins: int = ECE_BINS) -> float:
    """Top-label ECE in percent: 100 · Σ_b (n_b / M) · |acc_b − conf_b| over M rows.

    ``probabilities`` (M, K) are a model's softmax outputs, ``labels`` (M,) the true classes. A row's
    confidence is its largest probability and its prediction that class (the first on ties). Bin b
    (b = 0 … bins − 1) holds the confidences in the half-open interval (b/bins, (b + 1)/bins],
    edges computed as b/bins in float64 — so a confidence exactly on an edge belongs to the bin
    below it, as in Guo et al.'s code (``conf > lower and conf <= upper``); a confidence of exactly
    0 (impossible for a largest probability) would count in bin 0. acc_b and conf_b are the
    accuracy and mean confidence of bin b's rows; empty bins add nothing. NaN for M = 0.
    """
    p = _numpy(probabilities).astype(np.float64, copy=False)
    y = _numpy(labels)
    if not (p.ndim == 2 and y.shape == p.shape[:1]):
        raise ValueError(f"probabilities (M, K) and labels (M,), got {p.shape} and {y.shape}")
    if y.size == 0:
        return float("nan")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (e_b, e_{b+1}] → b
    gap = np.abs(np.bincount(index, correct, minlength=bins) - np.bincount(index, confidence, minlength=bins))
    return 100.0 * float(gap.sum()) / y.size  # Σ_b (n_b/M)·|acc_b − conf_b| = Σ_b |Σ correct − Σ conf| / M


@dataclasses.dataclass(frozen=True)
class LabelCorrection:
    """Shares (percent) of training rows whose prediction is the true class, by whether the label was corrupted."""

    corrected: float  # corrupted rows (noisy ≠ true) predicted as their true class; NaN without corrupted rows
    kept: float  # clean rows (noisy = true) still predicted as their true class; NaN without clean rows
    corrupted: int  # how many rows were corrupted
    clean: int

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def label_correction(predictions, true_labels, noisy_labels) -> LabelCorrection:
    """Label correction on the training rows from predicted classes (N,), true (N,) and noisy labels (N,).

    "corrected" = #{noisy ≠ true and prediction = true} / #{noisy ≠ true};
    "kept" = #{noisy = true and prediction = true} / #{noisy = true}, both in percent.
    """
    predicted, true, noisy = _numpy(predictions), _numpy(true_labels), _numpy(noisy_labels)
    if not (predicted.shape == true.shape == noisy.shape and predicted.ndim == 1):
        raise ValueError("one prediction and two labels per row")
    corrupted = noisy != true
    right = predicted == true
    return LabelCorrection(
        _percent(right[corrupted]), _percent(right[~corrupted]), int(corrupted.sum()), int((~corrupted).sum())
    )


def candidate_coverage(candidates, true_labels) -> float:
    """Share (percent) of rows whose true class is in the candidate set.

    ``candidates`` (N, K): the PLL student's targets (1/k on the candidate classes, 0 elsewhere) or
    a boolean mask; a class is a candidate where the entry is positive.
    """
    c, y = _numpy(candidates), _numpy(true_labels)
    if not (c.ndim == 2 and y.shape == c.shape[:1]):
        raise ValueError(f"candidates (N, K) and labels (N,), got {c.shape} and {y.shape}")
    return _percent(np.take_along_axis(c, y[:, None].astype(np.int64), axis=1)[:, 0] > 0)
