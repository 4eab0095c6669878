"""RS theory of the noisy Gaussian mixture: closed forms, limits, cross-checks and failure reports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gmm.model import Problem, generalisation_error, hebbian_error, type_weights
from gmm.theory import NotConverged, SolverOptions, solve_rs

FAST = SolverOptions(samples=4096)
BASE = Problem(
    alpha=2.0,
    rho=0.5,
    delta=1.0,
    theta=0.2,
    lambdas=(0.5, 0.3, 0.3),
    betas=(2.0, 2.0),
    labels="soft",
    loss="bce",
    bias="fix",
)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_zero_sd_reaches_the_hebbian_closed_form_at_large_lambda(loss):
    # ε(λ) − ε_Hebb = O(1/λ): tiny at λ = 1e4 and ~100× smaller than at λ = 1e2
    gaps = []
    for lam in (1e2, 1e4):
        problem = Problem(1.5, 0.5, 0.8, 0.15, (lam,), (), "soft", loss, "learn")
        gaps.append(solve_rs(problem, FAST).errors[0] - hebbian_error(1.5, 0.8, 0.15))
    assert abs(gaps[1]) < 1e-5
    assert abs(gaps[1]) < abs(gaps[0]) / 30


def test_bce_with_small_beta_matches_mse_when_lambda_is_doubled():
    # Small β·u: BCE ≈ ⅛(u − βu')² and MSE = ¼(u − βu')², so λ_MSE = 2·λ_BCE at every stage
    # (same β). A large teacher λ keeps the teacher's logits small too.
    bce = dataclasses.replace(BASE, lambdas=(100.0, 0.3, 0.3), betas=(0.05, 0.05))
    mse = dataclasses.replace(bce, loss="mse", lambdas=(200.0, 0.6, 0.6))
    bce_errors = solve_rs(bce, SolverOptions(samples=16384)).errors
    assert np.max(np.abs(bce_errors - solve_rs(mse).errors)) < 1e-5
    # the comparison has teeth: without the factor 2, or with a large β·u, the losses differ
    unmapped = dataclasses.replace(mse, lambdas=bce.lambdas)
    assert np.max(np.abs(bce_errors - solve_rs(unmapped).errors)) > 1e-3
    sharp = dataclasses.replace(bce, lambdas=(0.3, 0.3, 0.3), betas=(5.0, 5.0))
    sharp_mse = dataclasses.replace(sharp, loss="mse", lambdas=(0.6, 0.6, 0.6))
    assert np.max(np.abs(solve_rs(sharp, FAST).errors - solve_rs(sharp_mse).errors)) > 1e-3


def test_mse_closed_form_agrees_with_monte_carlo():
    problem = dataclasses.replace(BASE, loss="mse", rho=0.3, bias="learn", lambdas=(0.5, 0.2, 0.4), betas=(2.0, 0.5))
    exact = solve_rs(problem)
    assert exact.draws == 0
    sampled = solve_rs(problem, SolverOptions(samples=16384), closed_form=False)
    assert sampled.draws == 16384
    np.testing.assert_allclose(sampled.errors, exact.errors, atol=2e-5)


def test_mse_teacher_matches_a_hand_derived_fixed_point():
    # Stage 1 with MSE and a learned bias, derived separately (docs/gmm.md): with c = Δχ,
    #   b = 2E[ỹ] − 1 − (2ρ − 1)m,  m̂ = α(2E[sỹ] − m − (2ρ − 1)(b + 1))/(2 + c),  Q̂ = αΔ/(2 + c),
    #   χ̂ = αΔ(ΔQ + E[(sm + b + 1 − 2ỹ)²])/(2 + c)²,  χ = 1/(Q̂ + λ),  m = χm̂,  Q = m² + χ²χ̂.
    alpha, rho, delta, theta, lam = 1.5, 0.3, 0.5, 0.2, 0.5
    weights = type_weights(rho, theta)
    sign, observed = np.array([-1.0, 1.0, -1.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0])
    m, q, chi = 0.1, 1.0, 1.0
    for _ in range(500):
        c = delta * chi
        b = 2 * weights @ observed - 1 - (2 * rho - 1) * m
        mhat = alpha * (2 * weights @ (sign * observed) - m - (2 * rho - 1) * (b + 1)) / (2 + c)
        qhat = alpha * delta / (2 + c)
        chihat = alpha * delta * (delta * q + weights @ (sign * m + b + 1 - 2 * observed) ** 2) / (2 + c) ** 2
        chi = 1 / (qhat + lam)
        m, q = chi * mhat, (chi * mhat) ** 2 + chi**2 * chihat
    stage = solve_rs(Problem(alpha, rho, delta, theta, (lam,), (), "soft", "mse", "learn")).stages[0]
    assert stage.m == pytest.approx(m, abs=1e-8)
    assert stage.q == pytest.approx(q, abs=1e-8)
    assert stage.b == pytest.approx(b, abs=1e-8)
    assert stage.error == pytest.approx(float(generalisation_error(rho, delta, m, q, b)), abs=1e-9)


def test_learned_bias_is_exactly_zero_for_balanced_classes():
    learned = solve_rs(dataclasses.replace(BASE, bias="learn"), FAST)
    fixed = solve_rs(BASE, FAST)
    assert max(abs(stage.b) for stage in learned.stages) < 1e-12
    np.testing.assert_allclose(learned.errors, fixed.errors, atol=1e-9)


def test_a_stage_does_not_depend_on_later_stages_or_warm_starts():
    three = solve_rs(dataclasses.replace(BASE, labels="hard"), FAST)
    one = solve_rs(dataclasses.replace(BASE, labels="hard", lambdas=(0.5,), betas=()), FAST)
    assert one.errors[0] == three.errors[0]
    warm = solve_rs(dataclasses.replace(BASE, labels="hard"), FAST, start=solve_rs(BASE, FAST))
    np.testing.assert_allclose(warm.errors, three.errors, atol=1e-7)


def test_same_seed_same_numbers_and_other_seeds_agree_closely():
    first, again = solve_rs(BASE, FAST), solve_rs(BASE, FAST)
    assert np.array_equal(first.errors, again.errors)
    other = solve_rs(BASE, dataclasses.replace(FAST, seed=7))
    assert not np.array_equal(first.errors, other.errors)
    np.testing.assert_allclose(other.errors, first.errors, atol=2e-4)


def test_a_point_that_does_not_converge_raises_with_its_diagnostics():
    with pytest.raises(NotConverged) as caught:
        solve_rs(BASE, dataclasses.replace(FAST, max_iter=2))
    failure = caught.value
    assert (failure.stage, failure.iterations) == (1, 2)
    assert failure.last_update > FAST.tol
    assert "of the teacher" in str(failure) and "after 2 iterations" in str(failure)
