"""What each ``gmm_distill.py`` subcommand computes: a frozen config in, result rows out.

The rows are plain dicts (one per α, label type and stage), ready for a table, JSON or a plot.
A point whose saddle point does not converge becomes a :class:`UserError` naming the point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from threadpoolctl import threadpool_limits

from gmm.model import Problem, check_problem
from gmm.real import MODELS, binary_task, check_classes, compare, load_features
from gmm.simulate import SimulationOptions, TrainingFailed, draw_mixture, simulate, stage_error, training_size
from gmm.theory import MAX_STAGES, NotConverged, SolverOptions, solve_rs
from gmm.tune import TuneOptions, tune_on_validation, tune_theory
from utils.errors import UsageError, UserError
from utils.seeding import numpy_rng

Progress = Callable[[Iterable], Iterable]


@dataclass(frozen=True)
class Config:
    """Every flag of every subcommand (unused ones keep their defaults); saved beside each result."""

    command: str
    alphas: tuple[float, ...] = (2.0,)
    rho: float = 0.5
    delta: float = 1.0
    theta: float = 0.2
    stages: int = 2
    lambdas: tuple[float, ...] = ()
    betas: tuple[float, ...] = ()
    labels: tuple[str, ...] = ("soft",)
    loss: str = "bce"
    bias: str = "fix"
    samples: int = SolverOptions.samples
    seed: int = SolverOptions.seed
    tol: float = SolverOptions.tol
    damping: float = SolverOptions.damping
    max_iter: int = SolverOptions.max_iter
    N: int | None = None
    trials: int = 20
    threads: int = 1
    validation: float = 0.0
    lambda_range: tuple[float, float] = TuneOptions.lambda_range
    beta_range: tuple[float, float] = TuneOptions.beta_range
    stop_tol: float = TuneOptions.stop_tol
    search_samples: int = TuneOptions.search_samples
    grid_points: int = TuneOptions.grid_points
    dataset: str | None = None
    features: str | None = None
    classes: tuple[int, int] | None = None
    M: int = 200

    def solver(self) -> SolverOptions:
        return SolverOptions(self.samples, self.seed, self.tol, self.damping, self.max_iter)

    def tuning(self) -> TuneOptions:
        return TuneOptions(self.stages, self.lambda_range, self.beta_range, self.stop_tol,
                           self.search_samples, self.grid_points)

    def problem(self, alpha: float, labels: str) -> Problem:
        lambdas = self.lambdas or (1.0,) * self.stages
        betas = self.betas or (1.0,) * (self.stages - 1)
        return check_problem(Problem(alpha, self.rho, self.delta, self.theta, tuple(lambdas), tuple(betas),
                                     labels, self.loss, self.bias))


def check_config(config: Config) -> Config:
    """Everything a user can get wrong, checked before any work (so no partial output is written)."""
    if not config.alphas:
        raise UsageError("--alpha needs at least one value")
    if not 1 <= config.stages <= MAX_STAGES:
        raise UsageError(f"--stages must be between 1 and {MAX_STAGES}, got {config.stages}")
    if config.lambdas and len(config.lambdas) != config.stages:
        raise UsageError(f"--lambdas needs one value per stage ({config.stages}), got {len(config.lambdas)}")
    if config.betas and len(config.betas) != config.stages - 1:
        raise UsageError(f"--betas needs one value per pseudo-labelled stage ({config.stages - 1}), "
                        f"got {len(config.betas)}")
    numeric = (
        (config.samples >= 16, f"--samples must be at least 16, got {config.samples}"),
        (config.tol > 0, f"--tol must be > 0, got {config.tol}"),
        (0 <= config.damping < 1, f"--damping must be in [0, 1), got {config.damping}"),
        (config.max_iter >= 1, f"--max-iter must be at least 1, got {config.max_iter}"),
        (config.trials >= 2, f"--trials must be at least 2 (for a standard error), got {config.trials}"),
        (config.N is None or config.N >= 2, f"--N must be at least 2, got {config.N}"),
        (config.threads >= 1, f"--threads must be at least 1, got {config.threads}"),
        (0 <= config.validation < 1, f"--validation must be a fraction in [0, 1), got {config.validation}"),
        (0 < config.lambda_range[0] < config.lambda_range[1], "--lambda-range needs 0 < LOW < HIGH"),
        (0 < config.beta_range[0] < config.beta_range[1], "--beta-range needs 0 < LOW < HIGH"),
        (config.stop_tol >= 0, f"--stop-tol must be >= 0, got {config.stop_tol}"),
        (config.search_samples >= 16, f"--search-samples must be at least 16, got {config.search_samples}"),
        (config.grid_points >= 2, f"--grid-points must be at least 2, got {config.grid_points}"),
        (config.M >= 8, f"--M must be at least 8, got {config.M}"),
        (config.command != "real" or config.validation > 0,
         f"--validation must be a fraction in (0, 1) for real features, got {config.validation}"),
    )
    for ok, message in numeric:
        if not ok:
            raise UsageError(message)
    for alpha in config.alphas:
        for labels in config.labels:
            config.problem(alpha, labels)
    return config


def _where(problem: Problem) -> str:
    return f"alpha={problem.alpha:g}, labels={problem.labels}, loss={problem.loss}"


def _converged(solve: Callable, where: str):
    """Run ``solve``; a saddle point or a fit that does not converge becomes a one-line UserError."""
    try:
        return solve()
    except NotConverged as failure:
        raise UserError(f"{failure} at {where}; try a larger --max-iter or --samples, "
                        f"or another --damping") from None
    except TrainingFailed as failure:
        raise UserError(f"{failure} at {where}; try a larger λ (--lambdas or --lambda-range)") from None


def theory_rows(problem: Problem, solver: SolverOptions) -> list[dict]:
    """One row per stage of the RS saddle point at ``problem``."""
    result = _converged(lambda: solve_rs(problem, solver), _where(problem))
    return [
        {"labels": problem.labels, "alpha": problem.alpha, "stage": s.stage, "error": s.error, "m": s.m,
         "q": s.q, "b": s.b, "iterations": s.iterations, "last_update": s.last_update, "draws": result.draws}
        for s in result.stages
    ]


def run_theory(config: Config, progress: Progress = iter) -> list[dict]:
    points = [(labels, alpha) for labels in config.labels for alpha in config.alphas]
    return [row for labels, alpha in progress(points) for row in theory_rows(config.problem(alpha, labels),
                                                                             config.solver())]


def simulation_rows(problem: Problem, options: SimulationOptions, solver: SolverOptions | None) -> list[dict]:
    """Mean ± standard error per stage; with ``solver`` also the theory and the z-score."""
    result = _converged(lambda: simulate(problem, options), _where(problem))
    theory = _converged(lambda: solve_rs(problem, solver), _where(problem)).errors if solver else None
    rows = []
    for t in range(problem.stages):
        row = {"labels": problem.labels, "alpha": problem.alpha, "stage": t + 1, "N": options.N, "M": result.M,
               "trials": options.trials, "error": float(result.mean[t]),
               "standard_error": float(result.standard_error[t]), "b": float(result.biases[:, t].mean())}
        if theory is not None:
            row["theory"] = float(theory[t])
            row["z"] = (row["error"] - row["theory"]) / row["standard_error"] if row["standard_error"] > 0 else 0.0
        rows.append(row)
    return rows


def run_simulate(config: Config, progress: Progress = iter) -> list[dict]:
    """Simulations at the given hyperparameters, or (``validation`` > 0) tuned on a validation split."""
    options = SimulationOptions(config.N, config.trials, config.seed, config.threads)
    points = [(labels, alpha) for labels in config.labels for alpha in config.alphas]
    rows = []
    for labels, alpha in progress(points):
        problem = config.problem(alpha, labels)
        if config.validation > 0:
            rows.extend(validation_rows(problem, options, config.validation, config.tuning()))
        else:
            rows.extend(simulation_rows(problem, options, config.solver()))
    return rows


def validation_rows(problem: Problem, options: SimulationOptions, fraction: float, tuning: TuneOptions) -> list[dict]:
    """Per trial: train on M = αN samples, choose λ/β per stage on ⌈fraction·M⌉ extra noisy samples.

    Rows: the test error (exact formula) of the tuned t-stage model for t = 1..max_stages, and
    (stage "early-stopped") that of each trial's early-stopped choice, with the mean T*.
    """
    M = training_size(problem.alpha, options.N)
    extra = max(1, int(np.ceil(fraction * M)))
    errors = np.zeros((options.trials, tuning.max_stages))
    chosen = np.zeros(options.trials, dtype=int)
    with threadpool_limits(limits=options.threads, user_api="blas"):
        for trial in range(options.trials):
            train = draw_mixture(options.N, M, problem.rho, problem.delta, problem.theta,
                                 numpy_rng(options.seed, "gmm-simulate", trial))
            held_out = draw_mixture(options.N, extra, problem.rho, problem.delta, problem.theta,
                                    numpy_rng(options.seed, "gmm-validation", trial))
            choice = _converged(lambda: tune_on_validation(train.X, train.observed, held_out.X, held_out.observed,
                                                           problem.labels, problem.loss, problem.bias, tuning),
                                _where(problem))
            errors[trial] = [stage_error(w, b, problem.rho, problem.delta) for w, b in choice.fits]
            chosen[trial] = choice.best_stages
    rows = [_mean_row(problem, str(t + 1), errors[:, t], options, M, extra) for t in range(tuning.max_stages)]
    row = _mean_row(problem, "early-stopped", errors[np.arange(options.trials), chosen - 1], options, M, extra)
    row["mean_stages"] = float(chosen.mean())
    return rows + [row]


def _mean_row(problem: Problem, stage: str, errors: list[float], options: SimulationOptions, M: int, extra: int):
    errors = np.asarray(errors)
    se = float(errors.std(ddof=1) / np.sqrt(len(errors))) if len(errors) > 1 else float("nan")
    return {"labels": problem.labels, "alpha": problem.alpha, "stage": stage, "N": options.N, "M": M,
            "validation": extra, "trials": len(errors), "error": float(errors.mean()), "standard_error": se}


def run_tune(config: Config, progress: Progress = iter) -> tuple[list[dict], list[dict]]:
    """Theory optima per α, label type and stage count; optional simulations at those optima.

    Returns (rows per stage count, rows of the early-stopped stage count T* per α and label type).
    """
    solver, tuning = config.solver(), config.tuning()
    simulation = SimulationOptions(config.N, config.trials, config.seed, config.threads) if config.N else None
    rows, best_rows = [], []
    for alpha in progress(config.alphas):
        first = None
        for labels in config.labels:
            problem = config.problem(alpha, labels)
            result = _converged(lambda: tune_theory(problem, solver, tuning, first), _where(problem))
            first = result.optima[0]
            for optimum in result.optima:
                row = {"labels": labels, "alpha": alpha, "stages": optimum.stages, "error": optimum.error,
                       "lambdas": list(optimum.lambdas), "betas": list(optimum.betas),
                       "at_bounds": list(optimum.at_bounds), "evaluations": optimum.evaluations,
                       "infeasible": optimum.infeasible}
                if simulation is not None:
                    tuned = dataclasses.replace(problem, lambdas=optimum.lambdas,
                                                betas=optimum.betas or (1.0,) * (optimum.stages - 1))
                    sim = simulation_rows(tuned, simulation, None)[-1]
                    row.update(simulation_error=sim["error"], simulation_standard_error=sim["standard_error"],
                               N=simulation.N, trials=simulation.trials)
                rows.append(row)
            best_rows.append({"labels": labels, "alpha": alpha, "best_stages": result.best_stages,
                              "error": result.best.error, "evaluated_stages": len(result.optima)})
    return rows, best_rows


def run_real(config: Config, progress: Progress = iter) -> list[dict]:
    """0-SD, 1-SD hard and 1-SD soft on two classes of a feature set, tuned on a validation split."""
    if config.classes is None:
        raise UsageError("--classes needs two class indices, e.g. --classes 3 8")
    features = load_features(config.dataset, config.features)
    check_classes(features, config.classes, config.M, config.validation)
    outcomes: dict[str, list[dict]] = {name: [] for name in MODELS}
    for trial in progress(range(config.trials)):
        task = binary_task(features, config.classes, config.M, config.validation, config.theta,
                           numpy_rng(config.seed, "gmm-real", trial))
        comparison = _converged(lambda: compare(task, config.loss, config.bias, config.tuning(), config.threads),
                                f"{features.name} trial {trial}")
        for name, outcome in comparison.items():
            outcomes[name].append(outcome)
    a, b = (features.class_names[c] for c in config.classes)
    rows = []
    for name, results in outcomes.items():
        errors = np.array([r["error"] for r in results])
        betas = [r["beta"] for r in results if r["beta"] is not None]
        rows.append({"data": f"{features.name} {a} vs {b}", "model": name, "M": config.M, "theta": config.theta,
                     "trials": len(errors), "error": float(errors.mean()),
                     "standard_error": float(errors.std(ddof=1) / np.sqrt(len(errors))),
                     "mean_lambda": float(np.mean([r["lambda"] for r in results])),
                     "mean_beta": float(np.mean(betas)) if betas else None})
    return rows
