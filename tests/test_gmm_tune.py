"""Per-stage tuning: optima from the theory, bounds, infeasible points, early stopping, validation splits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import gmm.tune
from gmm.model import Problem, hebbian_error
from gmm.simulate import RidgeSolver, draw_mixture
from gmm.theory import NotConverged, SolverOptions, solve_rs
from gmm.tune import TuneOptions, early_stop, tune_on_validation, tune_theory

SOLVER = SolverOptions(samples=4096)
BALANCED = Problem(2.0, 0.5, 1.0, 0.2, (1.0,), (), "hard", "bce", "fix")


def test_zero_sd_optimum_is_the_hebbian_limit_and_sits_at_the_bound():
    result = tune_theory(BALANCED, SOLVER, TuneOptions(max_stages=1, search_samples=1024))
    (optimum,) = result.optima
    assert optimum.at_bounds == ("lambda_1 at upper bound 1000",)
    assert optimum.error == pytest.approx(hebbian_error(2.0, 1.0, 0.2), abs=1e-4)
    assert result.best_stages == 1


@pytest.mark.slow
def test_the_tuned_two_stage_error_beats_random_hyperparameters():
    problem = dataclasses.replace(BALANCED, alpha=1.0, rho=0.4, bias="learn")
    options = TuneOptions(max_stages=2, lambda_range=(1e-2, 1e2), search_samples=1024, stop_tol=1.0)
    optimum = tune_theory(problem, SOLVER, options).optima[1]
    rng = np.random.default_rng(0)
    feasible = 0
    for lambdas in np.exp(rng.uniform(np.log(1e-2), np.log(1e2), size=(6, 2))):
        try:
            other = solve_rs(dataclasses.replace(problem, lambdas=tuple(lambdas), betas=(1.0,)), SOLVER)
        except NotConverged:  # e.g. a teacher whose hard labels are all one class
            continue
        feasible += 1
        assert optimum.error <= other.errors[-1] + 1e-6
    assert feasible >= 3
    # the reported error is the theory's at the reported hyperparameters
    again = solve_rs(dataclasses.replace(problem, lambdas=optimum.lambdas, betas=(1.0,)), SOLVER)
    assert again.errors[-1] == pytest.approx(optimum.error, abs=1e-7)


def test_points_that_do_not_converge_are_infeasible_and_counted(monkeypatch):
    # Pretend every λ_1 above 10 fails: the unconstrained optimum (λ_1 → ∞) must not be returned.
    real_solve = gmm.tune.solve_rs

    def failing_above_ten(problem, *args, **kwargs):
        if problem.lambdas[0] > 10:
            raise NotConverged(1, 7, 0.5)
        return real_solve(problem, *args, **kwargs)

    monkeypatch.setattr(gmm.tune, "solve_rs", failing_above_ten)
    (optimum,) = tune_theory(BALANCED, SOLVER, TuneOptions(max_stages=1, search_samples=1024)).optima
    assert optimum.lambdas[0] <= 10
    assert optimum.infeasible > 0
    assert optimum.error > hebbian_error(2.0, 1.0, 0.2)


@pytest.mark.slow
def test_early_stopping_stops_at_the_first_stage_count_that_does_not_help():
    # Hard labels at these values: 1-SD helps, 2-SD does not (error 0.2434 → 0.2440)
    result = tune_theory(BALANCED, SOLVER, TuneOptions(max_stages=5, search_samples=1024))
    errors = [optimum.error for optimum in result.optima]
    assert len(errors) == 3 and result.best_stages == 2
    assert errors[1] < errors[0] - 1e-4 and errors[2] >= errors[1] - 1e-4
    assert result.best.stages == 2


@pytest.mark.parametrize(
    "errors, tol, stop",
    [
        ([0.3, 0.25, 0.251, 0.2], 1e-4, 2),
        ([0.3, 0.2999], 1e-3, 1),
        ([0.3, 0.2, 0.1], 1e-4, 3),
        ([0.3], 0.0, 1),
    ],
)
def test_early_stop_rule(errors, tol, stop):
    assert early_stop(errors, tol) == stop


def test_validation_tuning_picks_the_validation_argmin():
    rng = np.random.default_rng(3)
    train, val = draw_mixture(60, 120, 0.5, 1.0, 0.2, rng), draw_mixture(60, 60, 0.5, 1.0, 0.2, rng)
    options = TuneOptions(max_stages=2, lambda_range=(1e-2, 1e2), grid_points=5)
    choice = tune_on_validation(train.X, train.observed, val.X, val.observed, "soft", "mse", "learn", options)
    assert len(choice.fits) == 2 and len(choice.betas) == 1
    solver = RidgeSolver(train.X, learn_bias=True)
    errors = []
    for lam in np.geomspace(1e-2, 1e2, 5):
        w, b = solver.fit(train.observed, lam)
        errors.append(np.mean((val.X @ w / np.sqrt(60) + b > 0) != (val.observed > 0.5)))
    assert choice.validation_errors[0] == min(errors)
    largest_best = max(i for i, error in enumerate(errors) if error == min(errors))  # ties: stronger ridge
    assert choice.lambdas[0] == pytest.approx(np.geomspace(1e-2, 1e2, 5)[largest_best])
    assert choice.best_stages == early_stop(choice.validation_errors, options.stop_tol)
