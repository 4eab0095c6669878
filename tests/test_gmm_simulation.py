"""Finite-N simulations of the noisy mixture against the RS theory, and the training pieces."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from scipy.special import expit

from gmm.model import Problem
from gmm.simulate import RidgeSolver, SimulationOptions, draw_mixture, fit_bce, simulate, stage_error
from gmm.theory import SolverOptions, solve_rs

# Theory vs simulation: 8 points (3 in the default tier, the other 5 in the slow one), 21 stage
# comparisons. Each |simulation − theory| must be within 3.5 standard errors of the trial mean: for
# Gaussian errors a false alarm has probability ~5e-4 per comparison (~1% for all 21), while an
# O(1/N) finite-size bias at N = 500 is a fraction of an SE.
BAND = 3.5
SIZE = SimulationOptions(N=500, trials=24, seed=11)
POINTS = {
    # BCE: soft/hard labels, fixed/learned bias, balanced/imbalanced classes, T = 2 and 3
    "bce-soft-fix": Problem(2.0, 0.5, 1.0, 0.2, (0.5, 0.3, 0.3), (2.0, 2.0), "soft", "bce", "fix"),
    "bce-hard-fix": Problem(3.0, 0.4, 0.8, 0.1, (0.1, 0.1, 1.0), (1.0, 1.0), "hard", "bce", "fix"),
    "bce-soft-learn": Problem(1.5, 0.3, 0.5, 0.2, (0.5, 0.1, 0.1), (3.0, 3.0), "soft", "bce", "learn"),
    "bce-hard-learn": Problem(2.5, 0.35, 0.7, 0.15, (0.3, 1.0), (1.0,), "hard", "bce", "learn"),
    # MSE: the closed form (soft) and Monte Carlo (hard), α < 1 included
    "mse-soft-learn": Problem(1.5, 0.3, 0.5, 0.2, (0.5, 0.1, 0.1), (1.0, 1.0), "soft", "mse", "learn"),
    "mse-hard-fix": Problem(3.0, 0.4, 0.8, 0.1, (0.1, 0.1, 1.0), (1.0, 1.0), "hard", "mse", "fix"),
    "mse-soft-fix": Problem(0.7, 0.5, 1.0, 0.3, (0.2, 2.0), (4.0,), "soft", "mse", "fix"),
    "mse-hard-learn": Problem(2.0, 0.4, 0.6, 0.2, (0.5, 0.5), (1.0,), "hard", "mse", "learn"),
}


@functools.cache
def simulated(name: str):
    return simulate(POINTS[name], SIZE)


def z_scores(problem: Problem, simulation) -> np.ndarray:
    theory = solve_rs(problem, SolverOptions(samples=8192)).errors
    return (simulation.mean - theory) / simulation.standard_error


DEFAULT_TIER = ("mse-soft-fix", "mse-hard-learn", "bce-soft-fix")  # the closed form, Monte Carlo, BCE


@pytest.mark.parametrize(
    "name", [name if name in DEFAULT_TIER else pytest.param(name, marks=pytest.mark.slow) for name in POINTS]
)
def test_theory_matches_simulation(name):
    problem = POINTS[name]
    simulation = simulated(name)
    assert simulation.errors.shape == (SIZE.trials, problem.stages)
    assert np.all(simulation.standard_error > 0)
    z = z_scores(problem, simulation)
    assert np.all(np.abs(z) < BAND), f"{name}: z = {np.round(z, 2)}"


def test_the_band_rejects_a_wrong_theory():
    # Same simulations, theory at a label-noise rate off by 0.03: the comparison must fail.
    problem = POINTS["mse-hard-learn"]
    wrong = dataclasses.replace(problem, theta=problem.theta + 0.03)
    assert np.max(np.abs(z_scores(wrong, simulated("mse-hard-learn")))) > BAND


def test_same_seed_same_simulation():
    problem = POINTS["mse-hard-learn"]
    small = SimulationOptions(N=100, trials=3, seed=5)
    assert np.array_equal(simulate(problem, small).errors, simulate(problem, small).errors)
    assert not np.array_equal(
        simulate(problem, small).errors, simulate(problem, dataclasses.replace(small, seed=6)).errors
    )


@pytest.mark.parametrize("M", [40, 160])  # dual (M < N) and primal (M > N) closed forms
@pytest.mark.parametrize("learn_bias", [True, False])
def test_ridge_solver_solves_the_normal_equations(M, learn_bias):
    rng = np.random.default_rng(0)
    mixture = draw_mixture(80, M, 0.4, 1.0, 0.1, rng)
    targets = rng.random(M)
    w, bias = RidgeSolver(mixture.X, learn_bias).fit(targets, 0.3)
    u = mixture.X @ w / np.sqrt(80) + bias
    residual = 0.5 * (u - (2 * targets - 1))  # ∂/∂u of ¼(u − (2τ − 1))²
    np.testing.assert_allclose(mixture.X.T @ residual / np.sqrt(80) + 0.3 * w, 0, atol=1e-10)
    if learn_bias:
        assert abs(residual.sum()) < 1e-10


@pytest.mark.parametrize(
    "N, lam",
    [
        (60, 1e-3),
        (60, 0.2),
        (300, 0.2),  # Newton, L-BFGS
        pytest.param(300, 1e-3, marks=pytest.mark.slow),
    ],
)
def test_bce_fit_is_stationary(N, lam):
    rng = np.random.default_rng(1)
    mixture = draw_mixture(N, 150, 0.3, 1.0, 0.2, rng)
    w, bias = fit_bce(mixture.X, mixture.observed, lam, learn_bias=True)
    residual = expit(mixture.X @ w / np.sqrt(N) + bias) - mixture.observed
    assert np.max(np.abs(mixture.X.T @ residual / np.sqrt(N) + lam * w)) < 1e-5
    assert abs(residual.sum()) < 1e-5


def test_exact_error_formula_matches_a_large_test_set():
    rng = np.random.default_rng(2)
    N, rho, delta = 20, 0.3, 0.7
    w, bias = rng.normal(0.5, 1.0, N), -0.2
    test = draw_mixture(N, 200_000, rho, delta, 0.0, rng)
    empirical = np.mean((test.X @ w / np.sqrt(N) + bias > 0) != (test.labels > 0.5))
    assert stage_error(w, bias, rho, delta) == pytest.approx(empirical, abs=4e-3)  # 4 SE of the test set
