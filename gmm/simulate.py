"""Finite-N experiments: draw the noisy mixture, train every stage, score each w exactly.

Every stage minimises Σ_μ ℓ(u_μ; τ_μ) + (λ_t/2)‖w‖² with u = Xw/√N + B (the ridge is on w
only). BCE is solved by Newton (small N) or L-BFGS, warm-started from the previous stage; MSE in
closed form (one Gram matrix per trial, one Cholesky factor per λ). A trained w is scored with the exact test
error ε(m = Σw/N, q = ‖w‖²/N, b = B), so no test set is drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from gmm.model import Problem, generalisation_error, pseudo_targets
from utils.seeding import numpy_rng
from utils.threads import cpu_threads

log = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """A stage's optimiser stopped with a large gradient."""


@dataclass(frozen=True)
class SimulationOptions:
    """Size of the experiment: dimension N, independent training sets, the seed they are drawn from and
    the CPU threads of the fits (scoped to the call): these matrix-vector-bound fits gain little from
    threads and lose badly when the CPU is shared, so one is the default."""

    N: int
    trials: int
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class SimulationResult:
    """Exact test errors and biases of every stage in every trial, shapes (trials, T)."""

    problem: Problem
    N: int
    M: int
    errors: np.ndarray
    biases: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.errors.mean(axis=0)

    @property
    def standard_error(self) -> np.ndarray:
        trials = self.errors.shape[0]
        if trials < 2:
            return np.full(self.errors.shape[1], np.nan)
        return self.errors.std(axis=0, ddof=1) / np.sqrt(trials)


@dataclass(frozen=True)
class Mixture:
    """One training set: inputs X (M, N), true labels y and observed (possibly flipped) labels, (M,)."""

    X: np.ndarray
    labels: np.ndarray
    observed: np.ndarray


def draw_mixture(N: int, M: int, rho: float, delta: float, theta: float, rng: np.random.Generator) -> Mixture:
    """x_μ = s_μ v + √Δ z_μ with v = (1, …, 1)/√N, P(y = 1) = ρ; labels flipped with probability θ."""
    labels = (rng.random(M) < rho).astype(float)
    X = np.sqrt(delta) * rng.standard_normal((M, N))
    X += (2.0 * labels - 1.0)[:, None] / np.sqrt(N)
    flipped = rng.random(M) < theta
    return Mixture(X, labels, np.where(flipped, 1.0 - labels, labels))


def training_size(alpha: float, N: int) -> int:
    """M = round(αN), at least 2 (a bias and a ridge fit need two samples)."""
    return max(2, int(round(alpha * N)))


def stage_error(w: np.ndarray, bias: float, rho: float, delta: float) -> float:
    """Exact clean test error of the classifier (w, B) on the mixture."""
    N = w.shape[0]
    return float(generalisation_error(rho, delta, w.sum() / N, w @ w / N, bias))


class RidgeSolver:
    """Closed-form MSE fits min ¼‖Xw/√N + B − r‖² + (λ/2)‖w‖² for many targets r and λ on one X.

    With Y = X_c/√N (X centred when B is learned): (YᵀY/2 + λ) w = Yᵀr/2, or through the smaller
    Gram matrix, w = Yᵀ(YYᵀ/2 + λ)⁻¹ r/2 when M < N. The Gram matrix is formed once per training
    set and its Cholesky factor once per λ, so further targets (later stages, β grids) are cheap.
    """

    def __init__(self, X: np.ndarray, learn_bias: bool):
        M, N = X.shape
        self.learn_bias = learn_bias
        self.column_means = X.mean(axis=0) if learn_bias else np.zeros(N)
        self.scaled = (X - self.column_means) / np.sqrt(N)
        self.primal = N <= M
        self.gram = self.scaled.T @ self.scaled if self.primal else self.scaled @ self.scaled.T
        self.factors: dict[float, tuple] = {}

    def fit(self, targets: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
        r = 2.0 * targets - 1.0  # the loss is ¼(u − (2τ − 1))²
        offset = r.mean() if self.learn_bias else 0.0
        r = r - offset
        if lam not in self.factors:
            self.factors[lam] = scipy.linalg.cho_factor(0.5 * self.gram + lam * np.eye(self.gram.shape[0]))
        factor, Y = self.factors[lam], self.scaled
        if self.primal:
            w = scipy.linalg.cho_solve(factor, 0.5 * (Y.T @ r))
        else:  # push-through: (YᵀY/2 + λ)⁻¹Yᵀ = Yᵀ(YYᵀ/2 + λ)⁻¹
            w = Y.T @ scipy.linalg.cho_solve(factor, 0.5 * r)
        bias = offset - self.column_means @ w / np.sqrt(w.shape[0]) if self.learn_bias else 0.0
        return w, float(bias)


NEWTON_MAX_DIM = 128  # up to here exact Newton steps (M·N² each) beat many cheap L-BFGS steps


def fit_bce(
    X: np.ndarray, targets: np.ndarray, lam: float, learn_bias: bool, start: tuple[np.ndarray, float] | None = None
) -> tuple[np.ndarray, float]:
    """min Σ [log(1 + eᵘ) − τu] + (λ/2)‖w‖², u = Xw/√N + B, from ``start`` (or 0).

    Newton with a backtracking line search for N ≤ NEWTON_MAX_DIM (few iterations even for
    nearly separable data at tiny λ), L-BFGS above. Raises :class:`TrainingFailed` if the
    gradient is not small at the end (never returns a bad fit).
    """
    M, N = X.shape
    scale = 1.0 / np.sqrt(N)

    def objective(p):
        w, bias = p[:N], (p[N] if learn_bias else 0.0)
        u = (X @ w) * scale + bias
        residual = expit(u) - targets
        value = np.sum(-log_expit(-u) - targets * u) + 0.5 * lam * (w @ w)
        grad_w = (X.T @ residual) * scale + lam * w
        return value, np.concatenate([grad_w, [residual.sum() if learn_bias else 0.0]])

    p0 = np.zeros(N + 1) if start is None else np.concatenate([start[0], [start[1] if learn_bias else 0.0]])
    # The gradient at w = 0, B = 0 sets the scale; 1e-4 of it (both solvers usually get far
    # below) moves the test error by much less than any standard error we report.
    scale_at_zero = max(1.0, np.max(np.abs(objective(np.zeros(N + 1))[1])))
    if N <= NEWTON_MAX_DIM:
        p, gradient = _newton(objective, p0, X * scale, lam, learn_bias)
        message = "Newton"
    else:
        result = minimize(
            objective,
            p0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20000, "maxcor": 20, "ftol": 1e-14, "gtol": 1e-9},
        )
        p, gradient, message = result.x, result.jac, result.message
        if not np.max(np.abs(gradient)) < 1e-7 * scale_at_zero:
            # With many samples the objective's rounding stops L-BFGS early; Newton-CG steps
            # only need the gradient, which stays accurate.
            p, gradient = _newton_cg(objective, p, X, scale, lam, learn_bias, 1e-7 * scale_at_zero)
            message = f"{message}; then Newton-CG"
    if not np.max(np.abs(gradient)) < 1e-4 * scale_at_zero:
        raise TrainingFailed(f"BCE fit did not converge (max gradient {np.max(np.abs(gradient)):.3g}, {message})")
    return p[:N].copy(), float(p[N]) if learn_bias else 0.0


def _newton_cg(objective, p: np.ndarray, X: np.ndarray, scale: float, lam: float, learn_bias: bool, target: float):
    """A few Newton steps with the Hessian applied by products, H·(v, c) = (Xᵀ(d ⊙ (Xv·scale + c))·scale + λv,
    Σ d ⊙ (Xv·scale + c)), solved by conjugate gradients; a step must lower the largest gradient entry."""
    N = X.shape[1]
    gradient = objective(p)[1]
    for _ in range(20):
        if np.max(np.abs(gradient)) < target:
            break
        sig = expit((X @ p[:N]) * scale + (p[N] if learn_bias else 0.0))
        curvature = sig * (1.0 - sig)

        def hessian_times(v):
            along = curvature * ((X @ v[:N]) * scale + (v[N] if learn_bias else 0.0))
            return np.concatenate([(X.T @ along) * scale + lam * v[:N], [along.sum() if learn_bias else v[N]]])

        operator = scipy.sparse.linalg.LinearOperator((N + 1, N + 1), matvec=hessian_times)
        direction = scipy.sparse.linalg.cg(operator, -gradient, rtol=1e-10, maxiter=500)[0]
        step = 1.0
        while step > 1e-6:
            trial = objective(p + step * direction)[1]
            if np.max(np.abs(trial)) < np.max(np.abs(gradient)):
                p, gradient = p + step * direction, trial
                break
            step *= 0.5
        else:
            break
    return p, gradient


def _newton(objective, p: np.ndarray, Y: np.ndarray, lam: float, learn_bias: bool):
    """Damped Newton on the BCE objective in p = (w, B), Y = X/√N; returns (p, gradient)."""
    N = Y.shape[1]
    value, gradient = objective(p)
    for _ in range(100):
        sig = expit(Y @ p[:N] + (p[N] if learn_bias else 0.0))
        curvature = sig * (1.0 - sig)
        hessian = np.zeros((N + 1, N + 1))
        hessian[:N, :N] = (Y.T * curvature) @ Y + lam * np.eye(N)
        if learn_bias:
            hessian[:N, N] = hessian[N, :N] = Y.T @ curvature
            hessian[N, N] = curvature.sum() + 1e-12  # a separable bias direction is nearly flat
        else:
            hessian[N, N] = 1.0  # B stays 0: its gradient component is 0
        direction = -scipy.linalg.solve(hessian, gradient, assume_a="pos")
        decrement = -gradient @ direction  # Newton decrement²: the predicted decrease × 2
        if not decrement > 1e-20 * (1.0 + abs(value)):
            break
        step = 1.0
        while step > 1e-10:  # Armijo backtracking
            trial_value, trial_gradient = objective(p + step * direction)
            if trial_value <= value - 0.25 * step * decrement:
                break
            step *= 0.5
        p, value, gradient = p + step * direction, trial_value, trial_gradient
    return p, gradient


def train_stages(mixture: Mixture, problem: Problem) -> list[tuple[np.ndarray, float]]:
    """Train stages 1..T on one training set; stage t ≥ 2 fits pseudo-labels from stage t − 1."""
    learn_bias = problem.bias == "learn"
    solver = RidgeSolver(mixture.X, learn_bias) if problem.loss == "mse" else None
    targets = mixture.observed
    fits: list[tuple[np.ndarray, float]] = []
    for t, lam in enumerate(problem.lambdas):
        if solver is not None:
            fit = solver.fit(targets, lam)
        else:
            fit = fit_bce(mixture.X, targets, lam, learn_bias, fits[-1] if fits else None)
        fits.append(fit)
        if t + 1 < problem.stages:
            logits = mixture.X @ fit[0] / np.sqrt(mixture.X.shape[1]) + fit[1]
            targets = pseudo_targets(logits, problem.betas[t], problem.labels, problem.loss)
    return fits


def simulate(problem: Problem, options: SimulationOptions) -> SimulationResult:
    """Mean over ``options.trials`` independent training sets; trial k always sees the same data."""
    M = training_size(problem.alpha, options.N)
    errors = np.zeros((options.trials, problem.stages))
    biases = np.zeros_like(errors)
    with cpu_threads(options.threads):
        for trial in range(options.trials):
            rng = numpy_rng(options.seed, "gmm-simulate", trial)
            mixture = draw_mixture(options.N, M, problem.rho, problem.delta, problem.theta, rng)
            for t, (w, bias) in enumerate(train_stages(mixture, problem)):
                errors[trial, t] = stage_error(w, bias, problem.rho, problem.delta)
                biases[trial, t] = bias
    log.debug("simulated α=%g N=%d: %s", problem.alpha, options.N, errors.mean(axis=0))
    return SimulationResult(problem, options.N, M, errors, biases)
