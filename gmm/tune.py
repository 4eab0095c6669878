"""Per-stage hyperparameter optimisation with early stopping of the stage count.

Theory: for T = 1, 2, … minimise the stage-T error of the RS theory over log λ_1..λ_T (and
log β_1..β_{T−1} for soft labels) by bounded Nelder–Mead on few common Monte Carlo draws,
warm-started from the (T−1)-stage optimum plus a grid search over the new stage's parameters,
then polish with the full draw count. Stop adding stages once the optimum improves by no more
than ``stop_tol``. A point whose saddle point does not converge is infeasible: the search sees
a penalty (worse than any error), and the count of such points is reported.

Finite data: choose each stage's λ (and β) greedily by the error on a validation split with
the same noisy labels as the training split; the test error is never looked at.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from gmm.config import SolverOptions, TuneOptions
from gmm.model import Problem, pseudo_targets
from gmm.simulate import RidgeSolver, fit_bce
from gmm.theory import NotConverged, TheoryResult, gaussian_draws, solve_rs

log = logging.getLogger(__name__)

INFEASIBLE = 1.0  # an error no feasible point reaches (errors are ≤ max(ρ, 1 − ρ) < 1)
BOUND_MARGIN = 0.02  # a log-parameter this close to its bound counts as "at the bound"
SEARCH_MAX_ITER = 400


@dataclass(frozen=True)
class Optimum:
    """The best hyperparameters for a fixed stage count T, with the theory there (full draws)."""

    stages: int
    error: float
    lambdas: tuple[float, ...]
    betas: tuple[float, ...]
    at_bounds: tuple[str, ...]
    evaluations: int
    infeasible: int
    theory: TheoryResult


@dataclass(frozen=True)
class TuneResult:
    """Optima for T = 1..(stop), and the early-stopped stage count T* (the best optimum)."""

    problem: Problem
    optima: tuple[Optimum, ...]
    best_stages: int

    @property
    def best(self) -> Optimum:
        return self.optima[self.best_stages - 1]


class _Objective:
    """Stage-T theory error as a function of log-parameters; counts evaluations and infeasible points."""

    def __init__(self, problem: Problem, options: SolverOptions, draws: np.ndarray):
        self.problem = problem
        self.options = options
        self.draws = draws
        self.evaluations = 0
        self.infeasible = 0
        self.warm: TheoryResult | None = None
        self.last_failure = ""

    def problem_at(self, x: np.ndarray) -> Problem:
        T = self.problem.stages
        lambdas = tuple(float(v) for v in np.exp(x[:T]))
        betas = tuple(float(v) for v in np.exp(x[T:])) if self.problem.labels == "soft" else self.problem.betas
        return dataclasses.replace(self.problem, lambdas=lambdas, betas=betas)

    def solve(self, x: np.ndarray) -> TheoryResult | None:
        self.evaluations += 1
        try:
            result = solve_rs(self.problem_at(x), self.options, self.draws, self.warm)
        except NotConverged as failure:
            self.infeasible += 1
            self.last_failure = str(failure)
            log.debug("infeasible point %s: %s", np.exp(x), failure)
            return None
        self.warm = result
        return result

    def __call__(self, x: np.ndarray) -> float:
        result = self.solve(x)
        return INFEASIBLE if result is None else float(result.errors[-1])


def tune_theory(
    problem: Problem, solver: SolverOptions, options: TuneOptions, first: Optimum | None = None
) -> TuneResult:
    """Optimise T = 1, 2, … stages until the optimum stops improving (or T = max_stages).

    ``problem`` supplies α, ρ, Δ, θ, labels, loss, bias and the starting λ_1 (and β_1);
    ``first`` reuses a T = 1 optimum (it does not depend on the label type).
    """
    search_draws = gaussian_draws(options.search_samples, solver.seed)
    final_draws = gaussian_draws(solver.samples, solver.seed)
    optima: list[Optimum] = []
    for T in range(1, options.max_stages + 1):
        if T == 1 and first is not None:
            optima.append(first)
            continue
        optimum = _tune_stage_count(
            problem, T, optima[-1] if optima else None, solver, options, search_draws, final_draws
        )
        optima.append(optimum)
        log.info(
            "α=%g %s T=%d: error %.6f at λ=%s β=%s",
            problem.alpha,
            problem.labels,
            T,
            optimum.error,
            optimum.lambdas,
            optimum.betas,
        )
        if early_stop([o.error for o in optima], options.stop_tol) < T:
            break
    return TuneResult(problem, tuple(optima), early_stop([o.error for o in optima], options.stop_tol))


def _tune_stage_count(problem, T, previous: Optimum | None, solver, options, search_draws, final_draws) -> Optimum:
    soft = problem.labels == "soft"
    template = dataclasses.replace(
        problem,
        lambdas=(problem.lambdas[0],) * T,
        betas=((problem.betas[0] if problem.betas else 1.0),) * (T - 1),
    )
    bounds = _bounds(T, soft, options)
    low, high = np.array(bounds).T
    # Points that need more than a few hundred iterations are rare and slow; the search treats
    # them as infeasible (and counts them), the polish below uses the full iteration budget.
    search = _Objective(
        template, dataclasses.replace(solver, max_iter=min(solver.max_iter, SEARCH_MAX_ITER)), search_draws
    )
    if previous is None:
        start = np.log(np.array(template.lambdas))
        new = [0]
    else:
        start = np.concatenate(
            [
                np.log(previous.lambdas),
                [math.log(previous.lambdas[-1])],
                np.log(previous.betas) if soft else [],
                [0.0] if soft else [],
            ]
        )
        new = [T - 1] + ([2 * T - 2] if soft else [])
    start = _grid_search(search, np.clip(start, low, high), new, bounds, options.grid_points)
    coarse = _nelder_mead(search, start, bounds, step=0.5, max_evaluations=150 * len(start))
    polish = _Objective(template, solver, final_draws)
    fine = _nelder_mead(polish, coarse, bounds, step=0.1, max_evaluations=25 * len(start))
    polish.warm = None  # the reported theory is a cold solve at the reported hyperparameters
    theory = polish.solve(fine)
    if theory is None:
        raise NotConverged(T, 0, math.nan, f"the tuned optimum does not converge ({polish.last_failure})")
    chosen = polish.problem_at(fine)
    return Optimum(
        stages=T,
        error=float(theory.errors[-1]),
        lambdas=chosen.lambdas,
        betas=chosen.betas if soft else (),
        at_bounds=_at_bounds(fine, bounds, T),
        evaluations=search.evaluations + polish.evaluations,
        infeasible=search.infeasible + polish.infeasible,
        theory=theory,
    )


def _bounds(T: int, soft: bool, options: TuneOptions) -> list[tuple[float, float]]:
    lam = tuple(math.log(v) for v in options.lambda_range)
    beta = tuple(math.log(v) for v in options.beta_range)
    return [lam] * T + ([beta] * (T - 1) if soft else [])


def _grid_search(objective: _Objective, start: np.ndarray, coordinates: list[int], bounds, points: int) -> np.ndarray:
    """Best point of a log-spaced grid over ``coordinates`` (the new stage's parameters), others fixed."""
    axes = [np.linspace(*bounds[i], points) for i in coordinates]
    best, best_value = start, objective(start)
    for values in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(coordinates), -1).T:
        x = start.copy()
        x[coordinates] = values
        value = objective(x)
        if value < best_value:
            best, best_value = x, value
    return best


def _nelder_mead(objective: _Objective, start: np.ndarray, bounds, step: float, max_evaluations: int) -> np.ndarray:
    low, high = np.array(bounds).T
    simplex = [start] + [
        np.clip(start + step * np.eye(len(start))[i] * (1 if start[i] + step <= high[i] else -1), low, high)
        for i in range(len(start))
    ]
    result = minimize(
        objective,
        start,
        method="Nelder-Mead",
        bounds=bounds,
        options={"initial_simplex": np.array(simplex), "xatol": 1e-3, "fatol": 1e-8, "maxfev": max_evaluations},
    )
    return np.clip(result.x, low, high)


def _at_bounds(x: np.ndarray, bounds, T: int) -> tuple[str, ...]:
    names = [f"lambda_{t + 1}" for t in range(T)] + [f"beta_{t + 1}" for t in range(len(x) - T)]
    hits = []
    for name, value, (low, high) in zip(names, x, bounds):
        if value - low < BOUND_MARGIN:
            hits.append(f"{name} at lower bound {math.exp(low):g}")
        elif high - value < BOUND_MARGIN:
            hits.append(f"{name} at upper bound {math.exp(high):g}")
    return tuple(hits)


@dataclass(frozen=True)
class ValidationChoice:
    """Stages chosen greedily on a validation split, all ``max_stages`` of them, and the early stop.

    Per stage: λ, β (none for stage 1 or hard labels), validation error and the fitted (w, B).
    ``best_stages`` is the early-stopped count: the first t after which a further stage improves
    the validation error by no more than ``stop_tol``.
    """

    lambdas: tuple[float, ...]
    betas: tuple[float, ...]
    validation_errors: tuple[float, ...]
    fits: tuple[tuple[np.ndarray, float], ...]
    best_stages: int


def tune_on_validation(
    train_X: np.ndarray,
    train_labels: np.ndarray,
    val_X: np.ndarray,
    val_labels: np.ndarray,
    labels: str,
    loss: str,
    bias: str,
    options: TuneOptions,
) -> ValidationChoice:
    """Greedy per-stage grid search on the validation error, for ``options.max_stages`` stages.

    Stage t's (λ_t, β_{t−1}) minimise the 0-1 error on (val_X, val_labels) of the stage-t model
    given the stages already chosen. Labels are 0/1 and noisy in both splits, as in practice;
    ties go to the stronger ridge (larger λ), then to the smaller β.
    """
    learn_bias = bias == "learn"
    solver = RidgeSolver(train_X, learn_bias) if loss == "mse" else None
    lambda_grid = np.geomspace(*options.lambda_range, options.grid_points)
    beta_grid = np.geomspace(*options.beta_range, options.grid_points) if labels == "soft" else [1.0]
    sqrt_n = np.sqrt(train_X.shape[1])
    lambdas, betas, val_errors, fits = [], [], [], []
    for t in range(options.max_stages):
        best = None
        for beta in beta_grid if t else [None]:
            if t:
                logits = train_X @ fits[-1][0] / sqrt_n + fits[-1][1]
                targets = pseudo_targets(logits, beta, labels, loss)
            else:
                targets = train_labels
            fit = fits[-1] if fits else None
            for lam in lambda_grid[::-1]:  # strong to weak ridge: each BCE fit warm-starts the next
                fit = (
                    solver.fit(targets, lam) if solver is not None else fit_bce(train_X, targets, lam, learn_bias, fit)
                )
                error = float(np.mean(((val_X @ fit[0] / sqrt_n + fit[1]) > 0) != (val_labels > 0.5)))
                if best is None or error < best[0]:
                    best = (error, lam, beta, fit)
        error, lam, beta, fit = best
        lambdas.append(float(lam))
        if t and labels == "soft":
            betas.append(float(beta))
        val_errors.append(error)
        fits.append(fit)
    return ValidationChoice(
        tuple(lambdas), tuple(betas), tuple(val_errors), tuple(fits), early_stop(val_errors, options.stop_tol)
    )


def early_stop(errors, tol: float) -> int:
    """The stage count T* = first t whose successor improves the error by no more than ``tol``."""
    for t in range(1, len(errors)):
        if not errors[t] < errors[t - 1] - tol:
            return t
    return len(errors)
