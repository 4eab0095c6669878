"""The noisy Gaussian mixture, the learner's losses and pseudo-labels, shared by theory and simulation.

Data: x = s·v + √Δ·z with s = 2y − 1, P(y = 1) = ρ, v = (1, …, 1)/√N and z ~ N(0, I_N); each
training label is flipped with probability θ. The learner's logit is u = w·x/√N + B.
Stage 1 fits the observed labels; stage t ≥ 2 fits pseudo-labels made from stage t − 1's logits
on the same training inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from gmm.config import check_point

# The four kinds of training sample: (true class, label flipped?). Theory averages over them with
# ``type_weights``; the order is shared by every array with a leading axis of length 4.
TYPE_SIGN = np.array([-1.0, 1.0, -1.0, 1.0])  # s = 2y − 1
TYPE_OBSERVED = np.array([0.0, 1.0, 1.0, 0.0])  # the label the learner sees


@dataclass(frozen=True)
class Problem:
    """One point of the model: data statistics and the hyperparameters of every stage.

    ``lambdas`` has one ridge strength per stage (T = len(lambdas)); ``betas`` has one inverse
    temperature per soft pseudo-label, i.e. T − 1 values (unused, but still length-checked, for
    hard labels). ``bias='fix'`` holds every stage's bias at 0 (see docs/gmm.md for why).
    """

    alpha: float
    rho: float
    delta: float
    theta: float
    lambdas: tuple[float, ...]
    betas: tuple[float, ...]
    labels: str = "soft"
    loss: str = "bce"
    bias: str = "fix"

    @property
    def stages(self) -> int:
        return len(self.lambdas)


def check_problem(problem: Problem) -> Problem:
    """Raise :class:`UsageError` naming the flag and the fix if any parameter is outside the model's domain."""
    check_point(
        problem.alpha,
        problem.rho,
        problem.delta,
        problem.theta,
        problem.lambdas,
        problem.betas,
        problem.labels,
        problem.loss,
        problem.bias,
    )
    return problem


def type_weights(rho: float, theta: float) -> np.ndarray:
    """Probabilities of the four sample kinds (y=0 kept, y=1 kept, y=0 flipped, y=1 flipped), shape (4,)."""
    return np.array([(1 - rho) * (1 - theta), rho * (1 - theta), (1 - rho) * theta, rho * theta])


def generalisation_error(rho: float, delta: float, m, q, b):
    """Exact test error of a linear classifier on clean labels.

    ε = ρ·H((m + b)/√(Δq)) + (1 − ρ)·H((m − b)/√(Δq)), with H the normal tail, m = Σ_i w_i / N,
    q = ‖w‖²/N and b the bias. Broadcasts over arrays; also scores a trained finite-N w exactly.
    """
    scale = np.sqrt(delta * np.asarray(q, dtype=float))
    return rho * ndtr(-(m + b) / scale) + (1 - rho) * ndtr(-(m - b) / scale)


def pseudo_targets(logits, beta: float, labels: str, loss: str):
    """Targets for the next stage from this stage's logits u (any shape).

    Hard: Θ(u). Soft BCE: σ(βu). Soft MSE: (βu + 1)/2 — the linear label whose MSE fit matches
    BCE's σ(βu) to first order. Works on numpy arrays and on :class:`gmm.theory` affine variables
    (soft MSE only, which is linear).
    """
    if labels == "hard":
        return (np.asarray(logits) > 0).astype(float)
    if loss == "bce":
        return expit(beta * logits)
    return (beta * logits + 1.0) * 0.5


def hebbian_error(alpha: float, delta: float, theta: float) -> float:
    """0-SD error in the λ → ∞ (Hebbian, w ∝ Σ_μ s̃_μ x_μ) limit at ρ = 1/2.

    With m ∝ α(1 − 2θ) and q ∝ α²(1 − 2θ)² + αΔ: ε = H((1 − 2θ)/√(Δ((1 − 2θ)² + Δ/α))).
    """
    signal = 1.0 - 2.0 * theta
    return float(ndtr(-signal / math.sqrt(delta * (signal**2 + delta / alpha))))
