"""The reference-style baseline: Adam on the squared residual, as the authors' ``numerical_solving.py``.

Reproduced from the reference, in numpy float32 (torch's default dtype), per round:

- start: a fresh random point, Uniform[0, 1) entries with every sample's row scaled to sum 1
  (the reference does not warm-start from the previous round);
- loss: |Y - F(Y)|_F^2 with F the softmax map, or the linear map (1 + z) / K with ``--approx``;
  the gradient flows through both occurrences of Y;
- Adam with torch's defaults (betas 0.9, 0.999, eps 1e-8) and learning rate 1e-3, or 1e-2 with
  ``--approx``;
- after every step a projection: entries clamped below at 1e-6, then each row renormalised to 1;
- stop when the loss (evaluated before the step, as the reference checks it) is below 1e-5, or
  after ``max_iter`` steps.

The output is not a fixed point in general: its residual is recomputed in float64 and the round is
marked ``converged`` only if it meets ``tol``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class AdamSettings:
    """The reference's optimiser settings; ``learning_rate`` None means 1e-3, or 1e-2 when linear."""

    max_steps: int = 100_000
    learning_rate: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    floor: float = 1e-6
    stop_loss: float = 1e-5

    def rate(self, linear: bool) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-2 if linear else 1e-3


@dataclasses.dataclass(frozen=True)
class AdamRound:
    """Outputs (N, K) float32 after ``steps`` steps; ``loss`` is the last loss evaluated; ``stopped``
    says whether the stopping rule (loss < stop_loss) fired."""

    outputs: np.ndarray
    steps: int
    loss: float
    stopped: bool


def loss_and_gradient(
    gram: np.ndarray, gram_t: np.ndarray, previous: np.ndarray, outputs: np.ndarray, scale: float, linear: bool
) -> tuple[float, np.ndarray]:
    """L = |Y - F(Y)|_F^2 and dL/dY (N, K), in the dtype of the inputs.

    Z = scale Phi (Y_{t-1} - Y), R = Y - F(Z). Softmax: dL/dY = 2 R + scale Phi^T J (2 R) with
    (J v)_i = p_i * v_i - p_i (p_i . v_i). Linear map: dL/dY = 2 R + scale Phi^T (2 R) / K.
    ``gram_t`` is Phi^T (the same array when Phi is symmetric).
    """
    z = scale * (gram @ (previous - outputs))
    k = outputs.shape[1]
    if linear:
        r = outputs - (1 + z) / k
        back = 2 * r / k
    else:
        shifted = np.exp(z - z.max(axis=1, keepdims=True))
        p = shifted / shifted.sum(axis=1, keepdims=True)
        r = outputs - p
        two_r = 2 * r
        back = p * two_r - p * np.sum(p * two_r, axis=1, keepdims=True)
    return float(np.sum(r * r)), 2 * r + scale * (gram_t @ back)


def random_start(n_samples: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's start: Uniform[0, 1) entries (N, K), rows normalised to sum 1, float32."""
    start = rng.random((n_samples, k), dtype=np.float32)
    return start / start.sum(axis=1, keepdims=True)


def adam_round(
    gram32: np.ndarray,
    previous: np.ndarray,
    lbd: float,
    settings: AdamSettings,
    rng: np.random.Generator,
    linear: bool = False,
) -> AdamRound:
    """Run the reference's optimisation of one round; ``gram32`` is Phi (N, N) as float32."""
    n_samples, k = previous.shape
    gram_t = gram32 if np.array_equal(gram32, gram32.T) else np.ascontiguousarray(gram32.T)
    target = previous.astype(np.float32)
    outputs = random_start(n_samples, k, rng)
    scale = 1.0 / (n_samples * lbd)
    rate = settings.rate(linear)
    first = np.zeros_like(outputs)
    second = np.zeros_like(outputs)
    loss, steps = float("inf"), 0
    for steps in range(1, settings.max_steps + 1):
        loss, grad = loss_and_gradient(gram32, gram_t, target, outputs, scale, linear)
        # torch.optim.Adam: bias-corrected moments, eps added to the corrected root.
        first = settings.beta1 * first + (1 - settings.beta1) * grad
        second = settings.beta2 * second + (1 - settings.beta2) * grad * grad
        correction1 = 1 - settings.beta1**steps
        correction2 = 1 - settings.beta2**steps
        denom = np.sqrt(second) / math.sqrt(correction2) + settings.eps
        outputs = outputs - (rate / correction1) * first / denom
        outputs = np.maximum(outputs, np.float32(settings.floor))
        outputs = outputs / outputs.sum(axis=1, keepdims=True)
        if loss < settings.stop_loss:
            return AdamRound(outputs, steps, loss, True)
    return AdamRound(outputs, steps, loss, False)
