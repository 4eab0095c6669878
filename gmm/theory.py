"""Replica-symmetric (RS) saddle point of T-stage self-distillation on the noisy Gaussian mixture.

The stages are triangular (stage t never feeds back into s < t), so the saddle point is solved
stage by stage: with stages 1..t−1 fixed, a fixed-point iteration (Anderson-accelerated, with
damped steps as a fallback) finds stage t's conjugates (m̂_t, Q̂_{·t}, χ̂_{·t}) and bias b_t.
Each iteration has two halves.

Weight channel (ridge, exact). With the lower-triangular A, A_tt = Q̂_tt + λ_t, A_tr = Q̂_rt:
    χ = A⁻¹,   m = χ m̂,   Q = m mᵀ + χ χ̂ χᵀ.

Loss channel (one training sample). Gaussian fields g = Uᵀξ, UᵀU = ΔQ, ξ ~ N(0, I_T):
    h_t = g_t + s m_t + b_t + Σ_{s<t} (χ_ts/χ_ss) z_s,
    u_t = argmin_u ℓ_t(u) + (u − h_t)²/(2Δχ_tt),   z_t = u_t − h_t = −Δχ_tt ℓ'_t(u_t),
    m̂_t = −α E[s ℓ'_t],  χ̂_st = αΔ E[ℓ'_s ℓ'_t],  Q̂_rt = αΔ E[∂ℓ'_t/∂g_r],
    learned bias: E[ℓ'_t] = 0.
E averages over ξ and the four sample kinds. Q̂_·t comes from Stein's lemma, E[ξ ℓ'_t] =
U E[∇_g ℓ'_t], which also captures the jump of a hard label Θ(u_{t−1}); the diagonal term uses
the exact derivative E[ℓ''/(1 + Δχℓ'')] instead. docs/gmm.md derives all of this.

Expectations: BCE, and MSE with hard labels, average over a fixed set of scrambled-Sobol normal
draws with antithetic pairs (common random numbers: the same draws for every λ, so the tuner sees
a smooth objective). MSE with soft labels is linear-Gaussian end to end and is computed in closed
form by carrying each random variable as an affine function of ξ.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.special import expit, ndtri
from scipy.stats import qmc

from gmm.config import MAX_STAGES, SolverOptions
from gmm.model import TYPE_OBSERVED, TYPE_SIGN, Problem, generalisation_error, pseudo_targets, type_weights
from utils.seeding import numpy_rng
from utils.stages import Stage

log = logging.getLogger(__name__)


class NotConverged(Exception):
    """The fixed-point iteration of one stage did not reach the tolerance (or left the feasible set)."""

    def __init__(self, stage: int, iterations: int, last_update: float, reason: str = "no convergence"):
        self.stage = stage
        self.iterations = iterations
        self.last_update = last_update
        self.reason = reason
        progress = f" after {iterations} iterations (last update {last_update:.3g})" if iterations else ""
        super().__init__(f"RS saddle point of the {Stage.from_gmm_stage(stage).label}: {reason}{progress}")


@dataclass(frozen=True)
class StageResult:
    """Order parameters and the test error of one stage (stage 1 is the teacher, i.e. 0-SD)."""

    stage: int
    error: float
    m: float
    q: float
    b: float
    iterations: int
    last_update: float


@dataclass(frozen=True)
class TheoryResult:
    """All stages of one saddle point, plus the full order-parameter matrices (for warm starts)."""

    problem: Problem
    stages: tuple[StageResult, ...]
    draws: int  # 0 for the closed form
    order: dict[str, np.ndarray] = field(repr=False)

    @property
    def errors(self) -> np.ndarray:
        return np.array([stage.error for stage in self.stages])


def gaussian_draws(samples: int, seed: int) -> np.ndarray:
    """Standard normal draws of shape (n, MAX_STAGES), n = samples rounded up to a power of two.

    Half are scrambled-Sobol points mapped through Φ⁻¹, the other half their negatives: randomised
    quasi-Monte Carlo is ~100× more accurate than plain draws here, and the antithetic half makes
    odd moments vanish exactly (so b ≡ 0 at ρ = 1/2 comes out exactly, without a special case).
    """
    half_log2 = max(1, math.ceil(math.log2(max(samples, 4))) - 1)
    sobol = qmc.Sobol(d=MAX_STAGES, scramble=True, seed=numpy_rng(seed, "gmm-theory-draws"))
    half = ndtri(np.clip(sobol.random_base2(half_log2), 1e-16, 1 - 1e-16))
    return np.concatenate([half, -half])


def solve_rs(
    problem: Problem,
    options: SolverOptions = SolverOptions(),
    draws: np.ndarray | None = None,
    start: TheoryResult | None = None,
    closed_form: bool = True,
) -> TheoryResult:
    """Solve the T-stage RS equations; raise :class:`NotConverged` for a point that does not converge.

    ``draws`` (n, ≥T) are reused across calls for common random numbers (see :func:`gaussian_draws`);
    ``start`` warm-starts every stage from another solution with at least as many stages;
    ``closed_form=False`` uses Monte Carlo even where exact expectations exist (a cross-check).
    """
    T = problem.stages
    if T > MAX_STAGES:
        raise ValueError(f"at most {MAX_STAGES} stages, got {T}")
    closed_form = closed_form and problem.loss == "mse" and problem.labels == "soft"
    if closed_form:
        channel: _Expectations = _ClosedForm(T, type_weights(problem.rho, problem.theta))
    else:
        if draws is None:
            draws = gaussian_draws(options.samples, options.seed)
        channel = _MonteCarlo(draws[:, :T], type_weights(problem.rho, problem.theta))
    state = _State.empty(T)
    logits: list = []
    stage_results = []
    for t in range(T):
        targets = (
            channel.observed
            if t == 0
            else pseudo_targets(logits[t - 1], problem.betas[t - 1], problem.labels, problem.loss)
        )
        if problem.labels == "hard" and t > 0:
            _check_label_balance(t, channel, targets)
        warm = state.initialise(t, problem, channel, targets, start)
        try:
            iterations, last, u = _solve_stage(t, problem, options, channel, state, targets)
        except NotConverged:
            if not warm:
                raise
            # a warm start from another point can be infeasible or far off here: start cold
            state.initialise(t, problem, channel, targets, None)
            iterations, last, u = _solve_stage(t, problem, options, channel, state, targets)
        logits.append(u)
        error = float(generalisation_error(problem.rho, problem.delta, state.m[t], state.Q[t, t], state.b[t]))
        stage_results.append(
            StageResult(t + 1, error, float(state.m[t]), float(state.Q[t, t]), float(state.b[t]), iterations, last)
        )
        log.debug("stage %d: error %.6f after %d iterations", t + 1, error, iterations)
    return TheoryResult(problem, tuple(stage_results), 0 if closed_form else channel.size, state.as_dict())


@dataclass
class _State:
    """Order parameters (m, Q, χ, b) and conjugates (m̂, Q̂, χ̂) of all stages; mutable while solving.

    Q̂ is stored upper-triangular (Q̂[r, t], r ≤ t); χ lower-triangular (χ[t, s], s ≤ t); Q, χ̂ symmetric.
    ``fields[s]`` is ℓ'_s of a finished stage s, as the channel represents random variables.
    """

    m: np.ndarray
    Q: np.ndarray
    chi: np.ndarray
    b: np.ndarray
    mhat: np.ndarray
    Qhat: np.ndarray
    chihat: np.ndarray
    fields: list

    @classmethod
    def empty(cls, T: int) -> "_State":
        return cls(
            *(np.zeros(T), np.zeros((T, T)), np.zeros((T, T)), np.zeros(T)),
            np.zeros(T),
            np.zeros((T, T)),
            np.zeros((T, T)),
            [],
        )

    def initialise(
        self, t: int, problem: Problem, channel: "_Expectations", targets, start: TheoryResult | None
    ) -> bool:
        """Stage t's first conjugates: from ``start`` if given, else those of w = 0 (ℓ' = 1/2 − τ).

        A warm start is used only if its χ̂ column keeps χ̂ positive semidefinite together with
        this solution's earlier stages (else Q would be infeasible from the first iteration).
        Returns whether the warm start was used.
        """
        if start is not None and start.problem.stages > t:
            order = start.order
            self.chihat[: t + 1, t] = self.chihat[t, : t + 1] = order["chihat"][t, : t + 1]
            block = self.chihat[: t + 1, : t + 1]
            if np.linalg.eigvalsh(block)[0] >= -1e-10 * max(1.0, np.trace(block)):
                self.mhat[t] = order["mhat"][t]
                self.Qhat[: t + 1, t] = order["Qhat"][: t + 1, t]
                self.b[t] = order["b"][t] if problem.bias == "learn" else 0.0
                return True
        scale = problem.alpha * problem.delta
        at_zero = 0.5 - targets  # ℓ' at u = 0 for both losses
        self.mhat[t] = -problem.alpha * channel.mean_product(channel.sign, at_zero)
        for s in range(t):
            self.chihat[s, t] = self.chihat[t, s] = scale * channel.mean_product(self.fields[s], at_zero)
        self.chihat[t, t] = scale * channel.mean_product(at_zero, at_zero)
        self.Qhat[:t, t] = 0.0
        self.Qhat[t, t] = scale * (0.25 if problem.loss == "bce" else 0.5)
        self.b[t] = 0.0
        return False

    def weight_channel(self, t: int, lam: float) -> None:
        """Row t of χ = A⁻¹, m = χ m̂ and Q = m mᵀ + χ χ̂ χᵀ (rows < t are already final)."""
        diagonal = self.Qhat[t, t] + lam
        coupling = self.Qhat[:t, t]  # A[t, r] for r < t
        self.chi[t, t] = 1.0 / diagonal
        self.chi[t, :t] = -(coupling @ self.chi[:t, :t]) / diagonal
        self.m[t] = (self.mhat[t] - coupling @ self.m[:t]) / diagonal
        chi = self.chi[: t + 1, : t + 1]
        row = self.m[t] * self.m[: t + 1] + chi[t] @ self.chihat[: t + 1, : t + 1] @ chi.T
        self.Q[t, : t + 1] = self.Q[: t + 1, t] = row

    def conjugates(self, t: int) -> np.ndarray:
        """Stage t's unknowns as one vector: (m̂_t, χ̂_{0..t,t}, Q̂_{0..t,t}, b_t)."""
        return np.concatenate([[self.mhat[t]], self.chihat[: t + 1, t], self.Qhat[: t + 1, t], [self.b[t]]])

    def set_conjugates(self, t: int, x: np.ndarray) -> None:
        self.mhat[t] = x[0]
        self.chihat[: t + 1, t] = self.chihat[t, : t + 1] = x[1 : t + 2]
        self.Qhat[: t + 1, t] = x[t + 2 : 2 * t + 3]
        self.b[t] = x[-1]

    def cholesky(self, delta: float, t: int) -> np.ndarray:
        """The upper factor U of ΔQ over the finished stages 0..t−1, built column by column."""
        upper = np.zeros((0, 0))
        for s in range(t):
            upper = _extend_cholesky(upper, delta * self.Q[: s + 1, s])
        return upper

    def as_dict(self) -> dict[str, np.ndarray]:
        names = ("m", "Q", "chi", "b", "mhat", "Qhat", "chihat")
        return {name: getattr(self, name).copy() for name in names}


def _check_label_balance(t: int, channel: "_Expectations", targets) -> None:
    """Hard pseudo-labels that are (almost) all one class leave the student's bias diverging
    (b → ±∞ to predict a single class); the draws then cannot represent the other class at all."""
    ones = channel.mean(targets)
    minority = min(ones, 1.0 - ones) * channel.size
    if minority < 8:
        raise NotConverged(
            t + 1,
            0,
            math.nan,
            f"the {Stage.from_gmm_stage(t).label}'s hard labels are all one class "
            f"(fraction of ones {ones:.2g}), so the student is degenerate",
        )


def _solve_stage(t: int, problem: Problem, options: SolverOptions, channel: "_Expectations", state: _State, targets):
    """Fixed-point iteration for stage t's conjugates; returns (iterations, last update, logits u_t).

    The update is Anderson-accelerated (mixing 1 − damping over the last few iterates). A proposal
    that leaves the feasible set (Q not positive semidefinite, a flat bias, non-finite values)
    is replaced by a damped step from the last feasible iterate (see :meth:`_Anderson.retreat`).
    """
    earlier = state.cholesky(problem.delta, t)  # fixed while stage t iterates
    mixer = _Anderson(mixing=1.0 - options.damping)
    x = state.conjugates(t)
    last, logits, reason = math.inf, None, ""
    for iteration in range(1, options.max_iter + 1):
        state.set_conjugates(t, x)
        outcome = _stage_map(t, problem, channel, state, targets, earlier, logits)
        if isinstance(outcome, str):
            reason = outcome
            x = mixer.retreat()
            if x is None:
                raise NotConverged(t + 1, iteration, last, reason)
            continue
        new, logits, grad = outcome
        residual = new - x
        last = float(np.max(np.abs(residual) / np.maximum(1.0, np.abs(x))))
        if last < options.tol:
            # Keep the unmixed values: then χ̂ is exactly αΔ times the Gram matrix of the stored
            # ℓ'_s, so Q stays positive semidefinite even for a student parallel to its teacher.
            state.set_conjugates(t, new)
            state.weight_channel(t, problem.lambdas[t])
            state.fields.append(grad)
            return iteration, last, logits
        x = mixer.step(x, residual)
    raise NotConverged(t + 1, options.max_iter, last, reason or "no convergence")


def _stage_map(t, problem: Problem, channel: "_Expectations", state: _State, targets, earlier, warm):
    """One pass conjugates → order parameters → new conjugates for stage t.

    Returns (new conjugates, logits u_t, ℓ'_t), or a string saying why the point is infeasible.
    """
    alpha, delta = problem.alpha, problem.delta
    state.weight_channel(t, problem.lambdas[t])
    upper = _extend_cholesky(earlier, delta * state.Q[: t + 1, t])
    if upper is None or not np.isfinite(upper).all():
        return "Q left the positive-semidefinite set"
    width = delta * state.chi[t, t]
    if not width > 0:
        return "the response χ became non-positive"
    cavity = channel.gaussian(upper[:, t]) + channel.sign * state.m[t] + state.b[t]
    for s in range(t):
        cavity = cavity + (-delta * state.chi[t, s]) * state.fields[s]  # (χ_ts/χ_ss)·z_s
    logits, grad, curvature = channel.proximal(cavity, targets, width, problem.loss, warm)
    slope = channel.mean(curvature)  # E[∂ℓ'/∂h], exact
    if problem.bias == "learn" and not slope > 0:
        return "the loss is flat in the bias (separable data: raise λ)"
    if abs(state.b[t]) > 30.0 + 10.0 * math.sqrt(max(state.Q[t, t], 0.0) * delta):
        return "the bias diverges (every sample gets the same label)"
    stein = channel.mean_xi(grad, t + 1)
    stein[t] = upper[t, t] * slope
    new = np.concatenate(
        [
            [-alpha * channel.mean_product(channel.sign, grad)],
            [alpha * delta * channel.mean_product(f, grad) for f in state.fields[:t]],
            [alpha * delta * channel.mean_product(grad, grad)],
            alpha * delta * scipy.linalg.solve_triangular(upper, stein),
            [state.b[t] - channel.mean(grad) / slope if problem.bias == "learn" else 0.0],
        ]
    )
    if not np.isfinite(new).all():
        return "the iteration diverged (non-finite values)"
    return new, logits, grad


class _Anderson:
    """Anderson mixing (type II, Walker & Ni 2011) that falls back to damped steps when it fails.

    x_{k+1} = x_k + β r_k − (ΔX + β ΔR) γ,  γ = argmin ‖r_k − ΔR γ‖, over the last ``depth``
    differences of iterates x and residuals r = G(x) − x; β is the mixing (1 − damping).
    A plainly damped step keeps χ̂ a convex combination of Gram matrices (so Q stays feasible);
    an extrapolated one may not, so infeasible proposals are retried as damped steps.
    """

    def __init__(self, mixing: float, depth: int = 5):
        self.mixing = mixing
        self.depth = depth
        self.xs: list[np.ndarray] = []
        self.residuals: list[np.ndarray] = []
        self.extrapolated = False

    def step(self, x: np.ndarray, residual: np.ndarray) -> np.ndarray:
        self.xs = (self.xs + [x])[-(self.depth + 1) :]
        self.residuals = (self.residuals + [residual])[-(self.depth + 1) :]
        proposal = x + self.mixing * residual
        self.extrapolated = len(self.xs) > 1
        if self.extrapolated:
            dx = np.diff(np.array(self.xs), axis=0).T
            dr = np.diff(np.array(self.residuals), axis=0).T
            gamma = np.linalg.lstsq(dr, residual, rcond=1e-10)[0]
            proposal = proposal - (dx + self.mixing * dr) @ gamma
        return proposal

    def retreat(self) -> np.ndarray | None:
        """Replace an infeasible proposal by a damped step from the last feasible iterate.

        After a failed extrapolation the step is plain damping; after a failed damped step the
        mixing is halved. None when there is no feasible iterate or the mixing is exhausted.
        """
        if not self.xs:
            return None
        if not self.extrapolated:
            self.mixing *= 0.5
            if self.mixing < 1e-3:
                return None
        x, residual = self.xs[-1], self.residuals[-1]
        self.xs, self.residuals = [x], [residual]
        self.extrapolated = False
        return x + self.mixing * residual


def _extend_cholesky(upper: np.ndarray, column: np.ndarray) -> np.ndarray | None:
    """Append the last column of U (UᵀU = ΔQ) given the fixed (t, t) block of earlier stages.

    U[:t, t] = U[:t, :t]⁻ᵀ ΔQ[:t, t] and U_tt² = ΔQ_tt − ‖U[:t, t]‖². Q is a Gram matrix by
    construction (χ̂ is one), so a slightly negative U_tt² is rounding — a student almost parallel
    to an earlier stage — and is clamped; a clearly negative one means the iteration went astray.
    """
    t = upper.shape[0]
    off = scipy.linalg.solve_triangular(upper, column[:t], trans="T") if t else np.zeros(0)
    square = column[t] - off @ off
    if not square > -1e-9 * abs(column[t]):
        return None
    grown = np.zeros((t + 1, t + 1))
    grown[:t, :t] = upper
    grown[:t, t] = off
    grown[t, t] = math.sqrt(max(square, 1e-14 * abs(column[t]), 1e-300))
    return grown


class _Expectations:
    """How random variables of one training sample are represented and averaged (interface)."""

    sign: object
    observed: object
    size: int

    def gaussian(self, coefficients: np.ndarray): ...

    def mean(self, x) -> float: ...

    def mean_product(self, x, y) -> float: ...

    def mean_xi(self, x, k: int) -> np.ndarray: ...

    def proximal(self, cavity, targets, width: float, loss: str, warm):
        """u = argmin ℓ(u) + (u − h)²/(2·width); returns (u, ℓ'(u), ∂ℓ'(u)/∂h)."""
        if loss != "mse":
            raise NotImplementedError("only the MSE proximal step is linear")
        logits = (2.0 * cavity + width * (2.0 * targets - 1.0)) / (2.0 + width)
        return logits, (logits + 1.0) * 0.5 - targets, 1.0 / (2.0 + width)


class _MonteCarlo(_Expectations):
    """Random variables as arrays over (sample kind, draw): shape (4, n) or broadcastable to it."""

    def __init__(self, draws: np.ndarray, weights: np.ndarray):
        # one contiguous row per stage; the products below are tiny, so plain numpy beats BLAS
        # (whose threads only contend on a shared CPU)
        self.columns = np.ascontiguousarray(draws.T)
        self.weights = weights
        self.size = draws.shape[0]
        self.sign = TYPE_SIGN[:, None]
        self.observed = np.broadcast_to(TYPE_OBSERVED[:, None], (4, self.size))

    def gaussian(self, coefficients):
        g = np.zeros(self.size)
        for column, coefficient in zip(self.columns, coefficients):
            g += coefficient * column
        return g[None, :]

    def _over_draws(self, x) -> np.ndarray:
        """Average over the sample kinds, keeping draws: shape (n,)."""
        return self.weights @ np.broadcast_to(x, (4, self.size))

    def mean(self, x) -> float:
        return float(np.mean(self._over_draws(x)))

    def mean_product(self, x, y) -> float:
        return self.mean(x * y)

    def mean_xi(self, x, k):
        return (self.columns[:k] * self._over_draws(x)).mean(axis=1)

    def proximal(self, cavity, targets, width, loss, warm):
        if loss == "mse":
            return super().proximal(cavity, targets, width, loss, warm)
        return _bce_proximal(np.broadcast_to(cavity, targets.shape), targets, width, warm)


def _bce_proximal(cavity: np.ndarray, targets: np.ndarray, width: float, warm: np.ndarray | None):
    """Solve σ(u) − τ + (u − h)/c = 0 (c = width) for every sample; returns (u, ℓ', ∂ℓ'/∂h).

    Plain Newton from the previous iterate's u converges in a few steps; if it has not after a
    handful (a cold start far from the root, a very wide step at small λ), a safeguarded Newton
    takes over for those samples: the root lies in [h − c(1 − τ), h + cτ] since σ − τ ∈ (−τ, 1 − τ),
    and a step that leaves the bracket is replaced by bisection. σ is the costly part (one exp per
    sample), so it is evaluated once per Newton step and carried to the last step to first order.
    """
    start = cavity if warm is None else warm
    logits = start.copy()
    inverse_width = 1.0 / width
    for _ in range(8):
        sig = expit(logits)
        curvature = sig * (1.0 - sig)
        step = (sig - targets + (logits - cavity) * inverse_width) / (curvature + inverse_width)
        logits -= step
        # Newton converges quadratically: after a step below 1e-9 the error is far below 1e-15
        settled = np.abs(step) < 1e-9 * (1.0 + np.abs(logits))  # False for NaN
        if settled.all():
            sig -= curvature * step
            break
    else:  # only the samples that did not settle are redone, safeguarded, from the start point
        sig -= curvature * step
        unsettled = ~settled
        logits[unsettled] = _bracketed_newton(cavity[unsettled], targets[unsettled], width, start[unsettled])
        sig[unsettled] = expit(logits[unsettled])
    curvature = sig * (1.0 - sig)
    return logits, sig - targets, curvature / (1.0 + width * curvature)


def _bracketed_newton(cavity, targets, width, logits):
    low = cavity - width * (1.0 - targets)
    high = cavity + width * targets
    logits = np.clip(logits, low, high)
    for _ in range(200):
        sig = expit(logits)
        residual = sig - targets + (logits - cavity) / width
        low = np.where(residual < 0, logits, low)
        high = np.where(residual > 0, logits, high)
        proposal = logits - residual / (sig * (1.0 - sig) + 1.0 / width)
        proposal = np.where((proposal < low) | (proposal > high), 0.5 * (low + high), proposal)
        step = np.max(np.abs(proposal - logits) / (1.0 + np.abs(logits)))
        logits = proposal
        if step < 1e-12:
            break
    return logits


class _ClosedForm(_Expectations):
    """Random variables as exact affine functions of ξ and the sample kind (MSE with soft labels)."""

    def __init__(self, stages: int, weights: np.ndarray):
        self.stages = stages
        self.weights = weights
        self.size = 0
        self.sign = _Affine(np.zeros(stages), TYPE_SIGN)
        self.observed = _Affine(np.zeros(stages), TYPE_OBSERVED)

    def gaussian(self, coefficients):
        a = np.zeros(self.stages)
        a[: len(coefficients)] = coefficients
        return _Affine(a, np.zeros(4))

    def mean(self, x) -> float:
        return float(self.weights @ x.c) if isinstance(x, _Affine) else float(x)

    def mean_product(self, x, y) -> float:
        return float(self.weights @ (x.c * y.c) + x.a @ y.a)

    def mean_xi(self, x, k):
        return x.a[:k].copy()


class _Affine:
    """X = a·ξ + c[kind]: a (T,) coefficients on the standard normals, c (4,) per sample kind."""

    __slots__ = ("a", "c")
    __array_ufunc__ = None  # make ``ndarray * _Affine`` defer to _Affine.__rmul__

    def __init__(self, a: np.ndarray, c: np.ndarray):
        self.a = a
        self.c = c

    def __add__(self, other):
        if isinstance(other, _Affine):
            return _Affine(self.a + other.a, self.c + other.c)
        return _Affine(self.a, self.c + other)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-1.0) * other

    def __rsub__(self, other):
        return (-1.0) * self + other

    def __mul__(self, scalar):
        return _Affine(self.a * scalar, self.c * scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        return _Affine(self.a / scalar, self.c / scalar)
