"""The fixed-point map of one distillation round, its linearisation and their residuals.

Shapes: ``gram`` (N, N), ``previous`` = Y_{t-1} and ``outputs`` = Y (N, K), samples as rows.
These plain float64 functions are the definition every solver is checked against.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, shifted by the row maximum for stability."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def logits(gram: np.ndarray, previous: np.ndarray, outputs: np.ndarray, lbd: float) -> np.ndarray:
    """Z = Phi (Y_{t-1} - Y) / (N lambda), shape (N, K)."""
    return gram @ (previous - outputs) / (gram.shape[0] * lbd)


def fixed_point_map(
    gram: np.ndarray, previous: np.ndarray, outputs: np.ndarray, lbd: float, linear: bool = False
) -> np.ndarray:
    """F(Y) = softmax(Z), or with ``linear`` the paper's approximation (1 + Z) / K."""
    z = logits(gram, previous, outputs, lbd)
    if linear:
        return (1.0 + z) / z.shape[1]
    return softmax(z)


def residual(gram: np.ndarray, previous: np.ndarray, outputs: np.ndarray, lbd: float, linear: bool = False) -> float:
    """max_{i,k} |Y - F(Y)|_{ik}: the max-norm residual that ``tol`` bounds."""
    return float(np.abs(outputs - fixed_point_map(gram, previous, outputs, lbd, linear)).max())


def squared_residual(
    gram: np.ndarray, previous: np.ndarray, outputs: np.ndarray, lbd: float, linear: bool = False
) -> float:
    """|Y - F(Y)|_F^2: the reference's loss, the squared Frobenius norm of the residual."""
    diff = outputs - fixed_point_map(gram, previous, outputs, lbd, linear)
    return float(np.sum(diff * diff))
