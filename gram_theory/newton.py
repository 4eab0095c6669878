"""The exact solver of one round: globalised Newton, with preconditioned conjugate gradients.

The problem. With M = Phi / (N lambda), A = Y_{t-1} - Y (rows sum to 0), Z = M A, P = softmax(Z) and
R = Y - P, round t asks for R = 0. This is the stationarity condition of

    p(A) = sum_i logsumexp(z_i) - <Y_{t-1}, Z> + 1/2 <A, Z>,      grad p = -M R,

the regularised multinomial logistic regression with soft targets Y_{t-1} written in its dual
coefficients (W = A^T X / (N lambda) for features X with Phi = X X^T). When Phi is symmetric positive
semidefinite p is convex, the fixed point is unique (the negative entropy makes the dual strictly
convex), and Newton's method with a backtracking line search on p converges from any start, and
quadratically near the solution.

Why this method. The Newton system is (I + D M) delta = -R with D = blockdiag(diag(p_i) - p_i p_i^T).
A dense solve has N K = 8000 unknowns at the defaults: a 512 MB matrix and several seconds per LU on
two cores, about ten times per round. Instead, D = Q Q^T with Q_i = diag(sqrt p_i) - p_i sqrt(p_i)^T,
and Woodbury turns the system into

    (I + Q^T M Q) w = Q^T M R,      delta = -R + Q w,

symmetric positive definite with eigenvalues >= 1, solved by conjugate gradients (one product
``gram @ (N x K)`` per iteration, a few milliseconds). The preconditioner keeps M exact on its K
outlying eigenvectors (the class blocks, eigenvalues ~ n (c - d) / (N lambda)) and replaces the rest
of the spectrum by its mean m0: P = I + Q^T (m0 I + U_T (M_T - m0) U_T^T) Q is block diagonal plus
rank T K, inverted by Woodbury. Its quality depends only on how far the bulk eigenvalues spread
around m0 (about +-20% for the synthetic features), so CG needs a handful of iterations per Newton
step and a round costs a few tenths of a second. Measured alternatives at the defaults (teacher
round): L-BFGS on p (scipy) reaches a residual of 5e-5 after 1,000 iterations (3 minutes) and stops
at 4e-6 when its line search fails; the plain iteration Y <- F(Y) oscillates at residual 1, since
|M| is ~1e4.

Non-symmetric Phi (``--gram reference``). No potential exists and the problem is not convex. The
solver takes exact Newton directions from a dense LU of the Jacobian reduced to the N (K - 1)
row-sum-zero coordinates and backtracks on |R|_F^2. A fixed point exists (F maps the product of
simplices into itself; Brouwer) but need not be unique, and the line search can stall at a local
minimum of |R|. The caller then follows the solution from a 100 times larger lambda down to the
target (``solve_by_continuation``); if that stalls too, the round fails with an error. What the
solver guarantees in every case: a round it returns satisfies max |Y - F(Y)| <= tol, recomputed with
the plain float64 map.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import scipy.linalg

from gram_theory.fixed_point import logits, softmax
from gram_theory.spectrum import Spectrum
from utils.errors import UserError

log = logging.getLogger(__name__)

# Armijo constant, the smallest step tried, and how many Newton steps may pass without progress
# before the solve counts as stalled. Progress: the best residual halves, or (convex case only, where
# the potential decreasing guarantees convergence) the potential falls by more than rounding.
_ARMIJO = 1e-4
_MIN_STEP = 1e-10
_STALL_STEPS = 20
_ROUNDING = 1e-10
_MAX_CG = 300
# Relative CG tolerance. Looser directions err along Phi's top eigenvectors, where M is ~1e4 - 1e6
# times larger than in the bulk: the line search on p then cuts steps to ~1e-3 and the damped phase
# takes hundreds of iterations at small lambda (measured: 526 iterations at n = 200, lambda = 1e-7,
# against 10 with this value). 1e-6 is near the float32 products' resolution.
_FORCING = 1e-6


class ConvergenceError(UserError):
    """A round did not reach the tolerance; the message states the residual it reached."""


@dataclasses.dataclass(frozen=True)
class RoundSolution:
    """The outputs (N, K) of one round, their max-norm residual and the work it took."""

    outputs: np.ndarray
    residual: float
    iterations: int
    inner_iterations: int


def _q(sqrt_p: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Q w per row: sqrt(p) * w - p (sqrt(p) . w), shapes (N, K)."""
    return sqrt_p * w - p * np.sum(sqrt_p * w, axis=1, keepdims=True)


def _qt(sqrt_p: np.ndarray, p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Q^T v per row: sqrt(p) * v - sqrt(p) (p . v), shapes (N, K)."""
    return sqrt_p * v - sqrt_p * np.sum(p * v, axis=1, keepdims=True)


class _Preconditioner:
    """Inverse of P = B + W W^T, with B_i = I + m0 Q_i^T Q_i (K x K) and W (N, K, T K), by Woodbury."""

    def __init__(self, sqrt_p: np.ndarray, p: np.ndarray, top_m: np.ndarray, top_u: np.ndarray, bulk_m: float):
        k = p.shape[1]
        q = sqrt_p[:, :, None] * np.eye(k) - p[:, :, None] * sqrt_p[:, None, :]  # Q_i, (N, K, K)
        qtq = np.einsum("ilk,ilj->ikj", q, q)
        self.b_inv = np.linalg.inv(np.eye(k) + bulk_m * qtq)
        weights = top_u * np.sqrt(np.maximum(top_m - bulk_m, 0.0))  # (N, T)
        self.w = np.einsum("it,ilk->iktl", weights, q).reshape(p.shape[0], k, -1)
        self.b_inv_w = np.einsum("ikj,ijs->iks", self.b_inv, self.w)
        capacitance = np.eye(self.w.shape[2]) + np.einsum("iks,ikr->sr", self.w, self.b_inv_w)
        self.factor = scipy.linalg.cho_factor(capacitance)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        b = (self.b_inv @ v[:, :, None])[:, :, 0]
        s = scipy.linalg.cho_solve(self.factor, self.w.reshape(-1, self.w.shape[2]).T @ b.ravel())
        return b - self.b_inv_w @ s


def _cg_direction(
    gram32: np.ndarray,
    scale: float,
    p: np.ndarray,
    r: np.ndarray,
    forcing: float,
    top: tuple[np.ndarray, np.ndarray, float],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Newton step delta (N, K), M delta and the CG iteration count, for symmetric PSD M = scale Phi.

    The products with Phi use a float32 copy ``gram32``: they are memory-bound, so this makes them
    about four times faster, and an inexact Newton direction (relative error ~1e-6) costs at most one
    extra Newton step. The residual that decides convergence is always the float64 one.
    """

    def apply_m(x: np.ndarray) -> np.ndarray:
        return scale * (gram32 @ x.astype(np.float32)).astype(np.float64)

    sqrt_p = np.sqrt(p)
    top_m, top_u, bulk_m = top
    precondition = _Preconditioner(sqrt_p, p, top_m, top_u, bulk_m)
    m_r = apply_m(r)
    rhs = _qt(sqrt_p, p, m_r)
    w = np.zeros_like(rhs)
    m_qw = np.zeros_like(rhs)
    res = rhs.copy()
    z = precondition(res)
    direction = z.copy()
    rz = float(np.sum(res * z))
    target = forcing * np.sqrt(float(np.sum(rhs * rhs)))
    steps = 0
    while steps < _MAX_CG and np.sqrt(float(np.sum(res * res))) > target:
        m_q_dir = apply_m(_q(sqrt_p, p, direction))
        a_dir = direction + _qt(sqrt_p, p, m_q_dir)
        step = rz / float(np.sum(direction * a_dir))
        w += step * direction
        m_qw += step * m_q_dir
        res -= step * a_dir
        steps += 1
        z = precondition(res)
        rz_new = float(np.sum(res * z))
        direction = z + (rz_new / rz) * direction
        rz = rz_new
    return -r + _q(sqrt_p, p, w), -m_r + m_qw, steps


def _helmert(k: int) -> np.ndarray:
    """An orthonormal basis (K, K - 1) of the vectors whose entries sum to zero."""
    basis = np.linalg.qr(np.column_stack([np.ones(k), np.eye(k)[:, : k - 1]]))[0]
    return basis[:, 1:]


def _dense_direction(
    gram: np.ndarray, scale: float, p: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact Newton step for any M: LU of I + D M in the N (K - 1) row-sum-zero coordinates."""
    n, k = p.shape
    basis = _helmert(k)
    jac_blocks = p[:, :, None] * np.eye(k) - p[:, :, None] * p[:, None, :]
    reduced = np.einsum("ka,ikl,lb->iab", basis, jac_blocks, basis)
    jacobian = (scale * gram[:, None, :, None] * reduced[:, :, None, :]).reshape(n * (k - 1), -1)
    jacobian[np.diag_indices_from(jacobian)] += 1.0
    step = scipy.linalg.lu_solve(
        scipy.linalg.lu_factor(jacobian, overwrite_a=True, check_finite=False), -(r @ basis).ravel(), check_finite=False
    )
    delta = step.reshape(n, k - 1) @ basis.T
    return delta, scale * (gram @ delta), 1


def _potential(z: np.ndarray, previous: np.ndarray, dual: np.ndarray) -> float:
    """p(A) = sum_i logsumexp(z_i) - <Y_{t-1}, Z> + 1/2 <A, Z> for Z = M A."""
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(lse.sum() - np.sum(previous * z) + 0.5 * np.sum(dual * z))


def _squared_norm(x: np.ndarray) -> float:
    return float(np.sum(x * x))


def solve_round(
    gram: np.ndarray,
    previous: np.ndarray,
    lbd: float,
    spectrum: Spectrum | None,
    *,
    tol: float,
    max_iter: int,
    start: np.ndarray | None = None,
    symmetric: bool | None = None,
) -> RoundSolution:
    """Y (N, K) with max |Y - softmax(Phi (Y_{t-1} - Y) / (N lambda))| <= tol, or ConvergenceError.

    ``previous`` is Y_{t-1} (N, K); ``start`` (rows summing to 1) defaults to Y_{t-1}, from where the
    first Newton step is the closed form of the linearised map. ``symmetric`` (computed when None)
    selects CG with the potential p as merit, which needs ``spectrum`` (its outlying eigenpairs build
    the preconditioner), or dense Newton with |R|^2 as merit.
    """
    n, k = previous.shape
    scale = 1.0 / (n * lbd)
    if symmetric is None:
        symmetric = bool(np.array_equal(gram, gram.T))
    if symmetric:
        if spectrum is None:
            raise ValueError("a symmetric Gram matrix needs its spectrum for the preconditioner")
        top_m, top_u, bulk = spectrum.top(k)
        top = (top_m * scale, top_u, bulk * scale)
        gram32 = gram.astype(np.float32)
    outputs = previous.copy() if start is None else np.array(start, dtype=np.float64)
    best, best_at, inner, progress = np.inf, 0, 0, False
    for iteration in range(max_iter + 1):
        z = logits(gram, previous, outputs, lbd)
        p = softmax(z)
        r = outputs - p
        res = float(np.abs(r).max())
        log.debug("newton %d: residual %.3e", iteration, res)
        if res <= tol:
            return RoundSolution(outputs, res, iteration, inner)
        if res < 0.5 * best or progress:
            best, best_at = min(res, best), iteration
        if iteration - best_at >= _STALL_STEPS:
            raise ConvergenceError(
                f"stalled at residual {res:.3e} > tol {tol:g} after {iteration} Newton "
                "iterations (the rounding floor or a non-convex problem; raise --tol)"
            )
        if iteration == max_iter:
            break
        try:
            if symmetric:
                delta, m_delta, steps = _cg_direction(gram32, scale, p, r, _FORCING, top)
            else:
                delta, m_delta, steps = _dense_direction(gram, scale, p, r)
        except np.linalg.LinAlgError as error:
            # The systems are positive definite in exact arithmetic; rounding broke that (the scale
            # 1/(N lambda) is far beyond what config.smallest_wd admits, or the iterate holds NaN).
            raise ConvergenceError(
                f"the Newton system lost definiteness in rounding ({error}) at residual "
                f"{res:.3e} > tol {tol:g} after {iteration} Newton iterations"
            ) from None
        inner += steps
        outputs, decrease = _line_search(previous, outputs, z, r, delta, m_delta, symmetric, res, tol)
        progress = symmetric and decrease > _ROUNDING
    raise ConvergenceError(f"residual {res:.3e} > tol {tol:g} after --max-iter {max_iter} Newton iterations")


def solve_by_continuation(
    gram: np.ndarray,
    previous: np.ndarray,
    lbd: float,
    *,
    tol: float,
    max_iter: int,
    factor: float = 100.0,
    steps: int = 8,
) -> RoundSolution:
    """The round at ``lbd`` reached through lambda_0 = factor lbd > lambda_1 > ... > lbd (geometric).

    For a non-symmetric Phi, where Newton from a fixed start can stall: a larger lambda shrinks M, so
    the first problem is nearly linear, and each solution starts the next. Every intermediate round
    is solved to ``tol``; the last one is the answer (its ``iterations`` count the whole path).
    """
    outputs = np.full_like(previous, 1.0 / previous.shape[1])
    iterations = 0
    for value in np.geomspace(factor * lbd, lbd, steps + 1):
        try:
            solution = solve_round(
                gram, previous, float(value), None, tol=tol, max_iter=max_iter, start=outputs, symmetric=False
            )
        except ConvergenceError as error:
            raise ConvergenceError(f"{error} (continuation in lambda, at lambda={value:.3g})") from None
        outputs, iterations = solution.outputs, iterations + solution.iterations
    return dataclasses.replace(solution, iterations=iterations)


def _line_search(
    previous: np.ndarray,
    outputs: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    delta: np.ndarray,
    m_delta: np.ndarray,
    symmetric: bool,
    res: float,
    tol: float,
) -> tuple[np.ndarray, float]:
    """Backtrack Y + s delta (s = 1, 1/2, ...) until the merit decreases enough (Armijo).

    Returns the new outputs and the relative decrease of the merit.
    """
    dual = previous - outputs
    if symmetric:
        current = _potential(z, previous, dual)
        slope = float(np.sum(r * m_delta))
        slack = 1e-12 * (abs(current) + 1.0)  # rounding of p near the solution
    else:
        current = _squared_norm(r)
        slope = -2.0 * current
        slack = 0.0
    step = 1.0
    while step >= _MIN_STEP:
        trial_z = z - step * m_delta
        trial = outputs + step * delta
        if symmetric:
            merit = _potential(trial_z, previous, dual - step * delta)
        else:
            merit = _squared_norm(trial - softmax(trial_z))
        if np.isfinite(merit) and merit <= current + _ARMIJO * step * slope + slack:
            return trial, (current - merit) / (abs(current) + 1.0)
        step *= 0.5
    raise ConvergenceError(
        f"line search failed at residual {res:.3e} > tol {tol:g} (no descent along the Newton direction)"
    )
