"""What each ``gmm_distill.py`` subcommand computes: a validated :class:`Config` in, result rows out.

The rows are plain dicts (one per α, label type and model), ready for a table, JSON or a plot;
models are named by the project's one stage vocabulary (``teacher``, ``student1`` …, see
:mod:`utils.stages`; tables show ``student 1``), with the GMM paper's ``0-SD``/``1-SD`` as a
secondary ``paper`` column where its study is reproduced (``tune``, ``real``). A point whose
saddle point does not converge becomes a :class:`UserError` naming the point and a fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gmm.config import Config, SolverOptions, TuneOptions
from gmm.model import Problem, check_problem
from gmm.real import MODELS, binary_task, check_classes, compare, load_features
from gmm.report import people
from gmm.simulate import SimulationOptions, TrainingFailed, draw_mixture, simulate, stage_error, training_size
from gmm.theory import NotConverged, solve_rs
from gmm.tune import tune_on_validation, tune_theory
from utils.errors import UserError
from utils.progress import Steps
from utils.seeding import numpy_rng
from utils.stages import Stage
from utils.threads import cpu_threads

EARLY_STOPPED = "early-stopped"  # the model a validation-tuned chain stops at, per trial


@dataclass(frozen=True)
class Outcome:
    """What a subcommand produced: tables to print, the results of the JSON document, a figure."""

    tables: list[tuple[str, list[dict]]]
    results: dict[str, list[dict]]
    figure: Callable[[], object]  # -> matplotlib Figure, drawn only when asked for
    threads: int
    identity: str = ""  # what else distinguishes the result (the feature set of ``real``)


def run(config: Config, progress: bool = False, ready: Callable[[str], None] = lambda identity: None) -> Outcome:
    """Run ``config``'s subcommand with its thread count (restored after); ``progress`` reports each point.

    ``ready(identity)`` is called once what distinguishes the result is known and before the
    work starts (``real``: after the features are loaded and checked), so outputs can be named.
    """
    with cpu_threads(config.cpu_threads()) as threads:
        if config.command == "real":
            rows, identity = run_real(config, progress, ready)
            return Outcome([("real", rows)], {"rows": rows}, _figure("plot_real", rows), threads, identity)
        ready("")
        if config.command == "theory":
            rows = run_theory(config, progress)
            return Outcome([("theory", rows)], {"rows": rows}, _figure("plot_theory", rows), threads)
        if config.command == "simulate":
            rows = run_simulate(config, progress)
            name = "validation" if config.validation > 0 else "simulate"
            return Outcome([(name, rows)], {"rows": rows}, _figure("plot_simulation", rows), threads)
        rows, best = run_tune(config, progress)
        return Outcome(
            [("tune", rows), ("best", best)], {"rows": rows, "best": best}, _figure("plot_tuning", rows, best), threads
        )


def _figure(name: str, *rows) -> Callable[[], object]:
    """A function drawing ``gmm.plots.<name>(*rows)``: matplotlib loads only when a figure is asked for."""

    def draw():
        from gmm import plots

        return getattr(plots, name)(*rows)

    return draw


def problem_at(config: Config, alpha: float, labels: str) -> Problem:
    return check_problem(
        Problem(
            alpha,
            config.rho,
            config.delta,
            config.corruption,
            config.lambdas_or_default(),
            config.betas_or_default(),
            labels,
            config.loss,
            config.bias,
        )
    )


def model(t: int) -> str:
    """The slug (``teacher``, ``student1``) of the GMM tool's stage t ≥ 1."""
    return Stage.from_gmm_stage(t).slug


def _where(problem: Problem) -> str:
    return f"--alpha {problem.alpha:g} --labels {problem.labels} --loss {problem.loss}"


def _converged(solve: Callable, where: str):
    """Run ``solve``; a saddle point or a fit that does not converge becomes a one-line UserError."""
    try:
        return solve()
    except NotConverged as failure:
        raise UserError(f"{failure} at {where}; try a larger --max-iter or --samples, or another --damping") from None
    except TrainingFailed as failure:
        raise UserError(f"{failure} at {where}; try a larger λ (--lambdas or --lambda-range)") from None


def _points(config: Config) -> list[tuple[str, float]]:
    return [(labels, alpha) for labels in config.labels for alpha in config.alphas]


def _summary(rows: list[dict]) -> str:
    return ", ".join(f"{people(row['model'])} {row['error']:.4f}" for row in rows)


def theory_rows(problem: Problem, solver: SolverOptions) -> list[dict]:
    """One row per model of the RS saddle point at ``problem``."""
    result = _converged(lambda: solve_rs(problem, solver), _where(problem))
    return [
        {
            "labels": problem.labels,
            "alpha": problem.alpha,
            "model": model(s.stage),
            "error": s.error,
            "m": s.m,
            "q": s.q,
            "b": s.b,
            "iterations": s.iterations,
            "last_update": s.last_update,
            "draws": result.draws,
        }
        for s in result.stages
    ]


def run_theory(config: Config, progress: bool = False) -> list[dict]:
    rows = []
    with Steps(len(_points(config)), "theory points", enabled=progress) as steps:
        for labels, alpha in _points(config):
            point = theory_rows(problem_at(config, alpha, labels), config.solver())
            rows.extend(point)
            steps.done(f"{labels}, α={alpha:g}: {_summary(point)}")
    return rows


def simulation_rows(problem: Problem, options: SimulationOptions, solver: SolverOptions | None) -> list[dict]:
    """Mean ± standard error per model; with ``solver`` also the theory and the z-score."""
    result = _converged(lambda: simulate(problem, options), _where(problem))
    theory = _converged(lambda: solve_rs(problem, solver), _where(problem)).errors if solver else None
    rows = []
    for t in range(problem.stages):
        row = {
            "labels": problem.labels,
            "alpha": problem.alpha,
            "model": model(t + 1),
            "N": options.N,
            "M": result.M,
            "trials": options.trials,
            "error": float(result.mean[t]),
            "standard_error": float(result.standard_error[t]),
            "b": float(result.biases[:, t].mean()),
        }
        if theory is not None:
            row["theory"] = float(theory[t])
            row["z"] = (row["error"] - row["theory"]) / row["standard_error"] if row["standard_error"] > 0 else 0.0
        rows.append(row)
    return rows


def run_simulate(config: Config, progress: bool = False) -> list[dict]:
    """Simulations at the given hyperparameters, or (``validation`` > 0) tuned on a validation split."""
    options = SimulationOptions(config.N, config.trials, config.seed, config.cpu_threads())
    rows = []
    with Steps(len(_points(config)), "simulation points", enabled=progress) as steps:
        for labels, alpha in _points(config):
            problem = problem_at(config, alpha, labels)
            if config.validation > 0:
                point = validation_rows(problem, options, config.validation, config.tuning())
            else:
                point = simulation_rows(problem, options, config.solver())
            rows.extend(point)
            steps.done(f"{labels}, α={alpha:g}: {_summary(point)}")
    return rows


def validation_rows(problem: Problem, options: SimulationOptions, fraction: float, tuning: TuneOptions) -> list[dict]:
    """Per trial: train on M = αN samples, choose λ/β per model on ⌈fraction·M⌉ extra noisy samples.

    Rows: the test error (exact formula) of every model of the tuned chain, and (model
    ``early-stopped``) that of each trial's early-stopped choice, with the mean number of rounds.
    """
    M = training_size(problem.alpha, options.N)
    extra = max(1, int(np.ceil(fraction * M)))
    errors = np.zeros((options.trials, tuning.max_stages))
    chosen = np.zeros(options.trials, dtype=int)
    with cpu_threads(options.threads):
        for trial in range(options.trials):
            train = draw_mixture(
                options.N, M, problem.rho, problem.delta, problem.theta, numpy_rng(options.seed, "gmm-simulate", trial)
            )
            held_out = draw_mixture(
                options.N,
                extra,
                problem.rho,
                problem.delta,
                problem.theta,
                numpy_rng(options.seed, "gmm-validation", trial),
            )
            choice = _converged(
                lambda: tune_on_validation(
                    train.X,
                    train.observed,
                    held_out.X,
                    held_out.observed,
                    problem.labels,
                    problem.loss,
                    problem.bias,
                    tuning,
                ),
                _where(problem),
            )
            errors[trial] = [stage_error(w, b, problem.rho, problem.delta) for w, b in choice.fits]
            chosen[trial] = choice.best_stages
    rows = [_mean_row(problem, model(t + 1), errors[:, t], options, M, extra) for t in range(tuning.max_stages)]
    row = _mean_row(problem, EARLY_STOPPED, errors[np.arange(options.trials), chosen - 1], options, M, extra)
    row["mean_rounds"] = float(chosen.mean() - 1)
    return rows + [row]


def _mean_row(problem: Problem, name: str, errors: np.ndarray, options: SimulationOptions, M: int, extra: int):
    errors = np.asarray(errors)
    se = float(errors.std(ddof=1) / np.sqrt(len(errors))) if len(errors) > 1 else float("nan")
    return {
        "labels": problem.labels,
        "alpha": problem.alpha,
        "model": name,
        "N": options.N,
        "M": M,
        "validation": extra,
        "trials": len(errors),
        "error": float(errors.mean()),
        "standard_error": se,
    }


def run_tune(config: Config, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Theory optima per α, label type and number of rounds; optional simulations at those optima.

    Returns (one row per tuned chain: teacher alone, teacher + 1 student, …; one row per α and
    label type with the early-stopped number of rounds R*).
    """
    solver, tuning = config.solver(), config.tuning()
    simulation = SimulationOptions(config.N, config.trials, config.seed, config.cpu_threads()) if config.N else None
    rows, best_rows = [], []
    with Steps(len(config.alphas) * len(config.labels), "tuned points", enabled=progress) as steps:
        for alpha in config.alphas:
            first = None
            for labels in config.labels:
                problem = problem_at(config, alpha, labels)
                result = _converged(lambda: tune_theory(problem, solver, tuning, first), _where(problem))
                first = result.optima[0]
                for optimum in result.optima:
                    last = Stage.from_gmm_stage(optimum.stages)
                    row = {
                        "labels": labels,
                        "alpha": alpha,
                        "rounds": last.round,
                        "model": last.slug,
                        "paper": f"{last.round}-SD",
                        "error": optimum.error,
                        "lambdas": list(optimum.lambdas),
                        "betas": list(optimum.betas),
                        "at_bounds": list(optimum.at_bounds),
                        "evaluations": optimum.evaluations,
                        "infeasible": optimum.infeasible,
                    }
                    if simulation is not None:
                        tuned = dataclasses.replace(
                            problem, lambdas=optimum.lambdas, betas=optimum.betas or (1.0,) * (optimum.stages - 1)
                        )
                        sim = simulation_rows(tuned, simulation, None)[-1]
                        row.update(
                            simulation_error=sim["error"],
                            simulation_standard_error=sim["standard_error"],
                            N=simulation.N,
                            trials=simulation.trials,
                        )
                    rows.append(row)
                best = Stage.from_gmm_stage(result.best_stages)
                best_rows.append(
                    {
                        "labels": labels,
                        "alpha": alpha,
                        "best_rounds": best.round,
                        "best_model": best.slug,
                        "paper": f"{best.round}-SD",
                        "error": result.best.error,
                        "evaluated_rounds": len(result.optima) - 1,
                    }
                )
                steps.done(
                    f"{labels}, α={alpha:g}: best {best.label} ({best.round}-SD), error "
                    f"{result.best.error:.4f}, {sum(o.evaluations for o in result.optima)} saddle points"
                )
    return rows, best_rows


def run_real(
    config: Config, progress: bool = False, ready: Callable[[str], None] = lambda identity: None
) -> tuple[list[dict], str]:
    """Teacher, student 1 on hard and student 1 on soft labels on two classes of a feature set, tuned on a
    validation split; returns the rows and the feature set's identity (its ``source``)."""
    features = load_features(config.dataset, config.features)
    check_classes(features, config.classes, config.M, config.validation)
    ready(features.source)
    outcomes: dict = {m: [] for m in MODELS}
    with Steps(config.trials, "trials", enabled=progress) as steps:
        for trial in range(config.trials):
            task = binary_task(
                features,
                config.classes,
                config.M,
                config.validation,
                config.corruption,
                numpy_rng(config.seed, "gmm-real", trial),
            )
            comparison = _converged(
                lambda: compare(task, config.loss, config.bias, config.tuning(), config.cpu_threads()),
                f"{features.name} trial {trial}",
            )
            for m, outcome in comparison.items():
                outcomes[m].append(outcome)
            steps.done(", ".join(f"{m.name} {outcome['error']:.4f}" for m, outcome in comparison.items()))
    a, b = (features.class_names[c] for c in config.classes)
    rows = []
    for m, results in outcomes.items():
        errors = np.array([r["error"] for r in results])
        betas = [r["beta"] for r in results if r["beta"] is not None]
        rows.append(
            {
                "data": f"{features.name} {a} vs {b}",
                "model": m.stage.slug,
                "labels": m.labels,
                "paper": m.paper,
                "M": config.M,
                "corruption": config.corruption,
                "trials": len(errors),
                "error": float(errors.mean()),
                "standard_error": float(errors.std(ddof=1) / np.sqrt(len(errors))),
                "mean_lambda": float(np.mean([r["lambda"] for r in results])),
                "mean_beta": float(np.mean(betas)) if betas else None,
            }
        )
    return rows, features.source
