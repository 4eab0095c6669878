"""The synthetic Gram theory library: data, the exact solver, the closed form, Adam, statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gram_theory import adam, approx, data, experiment, newton, stats
from gram_theory.config import Config, smallest_wd
from gram_theory.fixed_point import residual, softmax
from gram_theory.spectrum import full_spectrum, top_spectrum
from utils.errors import UsageError
from utils.seeding import numpy_rng
from utils.threads import cpu_threads

K, N_PER = 3, 20
SMALL = Config(k=K, n=N_PER, wd=(1e-3,), corruption=(0.4,), rounds=3, epsilon=0.1)


@pytest.fixture(autouse=True)
def one_thread():
    """BLAS on one thread, scoped to each test: the sizes here are too small to split, and a busy
    machine makes two threads wait on each other."""
    with cpu_threads(1):
        yield


def _problem(gram: str = "features", eta: float = 0.4, epsilon: float = 0.1, n: int = N_PER, seed: int = 0):
    labels = data.class_labels(K, n)
    phi = data.make_gram(gram, labels, K, 0.4, 0.1, epsilon, numpy_rng(seed, "gram"))
    uniforms, other = data.label_noise(labels, K, numpy_rng(seed, "labels"))
    given = data.corrupt(labels, eta, uniforms, other)
    return labels, phi, given, data.one_hot(given, K)


def _solve(phi, previous, lbd, **kwargs):
    return newton.solve_round(phi, previous, lbd, full_spectrum(phi), tol=1e-10, max_iter=200, **kwargs)


# --- data ---------------------------------------------------------------------------------------


def test_feature_gram_is_a_true_gram_matrix():
    labels = data.class_labels(4, 60)
    phi = data.feature_gram(labels, 4, 0.4, 0.1, 0.3, numpy_rng(1, "gram"))
    assert np.array_equal(phi, phi.T)
    assert np.array_equal(np.diag(phi), np.ones(labels.size))
    assert np.linalg.eigvalsh(phi).min() > 0


def test_feature_gram_is_the_block_matrix_without_noise():
    labels = data.class_labels(3, 7)
    block = data.block_gram(labels, 0.5, 0.2)
    assert np.array_equal(data.feature_gram(labels, 3, 0.5, 0.2, 0.0, numpy_rng(0, "gram")), block)
    values = np.linalg.eigvalsh(block)
    expected = sorted([0.5] * (21 - 3) + [0.5 + 7 * 0.3] * 2 + [0.5 + 7 * 0.3 + 21 * 0.2])
    np.testing.assert_allclose(values, expected, atol=1e-12)


def test_feature_gram_noise_grows_with_epsilon():
    labels = data.class_labels(3, 30)
    block = data.block_gram(labels, 0.4, 0.1)
    small, large = (
        np.abs(data.feature_gram(labels, 3, 0.4, 0.1, eps, numpy_rng(0, "gram")) - block).mean() for eps in (0.05, 0.5)
    )
    assert 0 < small < large


def test_reference_gram_reproduces_the_reference_construction():
    labels = data.class_labels(3, 30)
    eps = 0.05
    phi = data.reference_gram(labels, 0.4, 0.1, eps, numpy_rng(0, "gram"))
    noise = phi.T - data.block_gram(labels, 0.4, 0.1)
    assert np.array_equal(np.diag(phi), np.ones(90))
    assert np.abs(noise).max() <= eps and np.abs(noise).max() > 0.9 * eps
    assert not np.allclose(phi, phi.T)


def test_label_noise_flips_to_other_classes_at_the_rate_and_nests():
    labels = data.class_labels(5, 4000)
    uniforms, other = data.label_noise(labels, 5, numpy_rng(3, "labels"))
    assert not np.any(other == labels)
    low, high = (data.corrupt(labels, eta, uniforms, other) for eta in (0.3, 0.6))
    assert abs(np.mean(low != labels) - 0.3) < 0.02
    assert np.all((low != labels) <= (high != labels))
    assert np.array_equal(data.corrupt(labels, 0.0, uniforms, other), labels)
    assert not np.any(data.corrupt(labels, 1.0, uniforms, other) == labels)


# --- exact solver -------------------------------------------------------------------------------


def test_newton_round_is_the_trained_linear_head():
    """The fixed point is the optimum of regularised cross-entropy for features X with Phi = X X^T."""
    labels, phi, given, y0 = _problem()
    lbd = 1e-3
    solution = _solve(phi, y0, lbd)
    assert solution.residual <= 1e-10
    values, vectors = np.linalg.eigh(phi)
    features = vectors * np.sqrt(np.maximum(values, 0))
    n = phi.shape[0]
    weights = (y0 - solution.outputs).T @ features / (n * lbd)  # W (K, D) from the dual coefficients
    probabilities = softmax(features @ weights.T)
    gradient = (probabilities - y0).T @ features / n + lbd * weights  # d/dW of mean CE + lbd/2 |W|^2
    assert np.abs(gradient).max() < 1e-9 * np.abs(weights).max() + 1e-12
    np.testing.assert_allclose(probabilities, solution.outputs, atol=1e-9)


def test_solution_does_not_depend_on_the_starting_point():
    labels, phi, given, y0 = _problem()
    rng = np.random.default_rng(5)
    starts = [None, np.full_like(y0, 1.0 / K), rng.dirichlet(np.ones(K), size=y0.shape[0]), y0[::-1].copy()]
    outputs = [_solve(phi, y0, 1e-4, start=start).outputs for start in starts]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], atol=1e-9)


def test_dense_newton_agrees_with_the_conjugate_gradient_path():
    labels, phi, given, y0 = _problem()
    cg = _solve(phi, y0, 1e-4, symmetric=True).outputs
    dense = _solve(phi, y0, 1e-4, symmetric=False).outputs
    np.testing.assert_allclose(dense, cg, atol=1e-9)


def test_lanczos_preconditioner_gives_the_same_round():
    labels = data.class_labels(4, 120)
    phi = data.feature_gram(labels, 4, 0.4, 0.1, 0.05, numpy_rng(0, "gram"))
    y0 = data.one_hot(data.corrupt(labels, 0.5, *data.label_noise(labels, 4, numpy_rng(0, "labels"))), 4)
    partial = top_spectrum(phi, 4, numpy_rng(0, "spectrum"))
    assert not partial.complete
    fast = newton.solve_round(phi, y0, 1e-5, partial, tol=1e-10, max_iter=100)
    full = newton.solve_round(phi, y0, 1e-5, full_spectrum(phi), tol=1e-10, max_iter=100)
    assert fast.residual <= 1e-10 and residual(phi, y0, fast.outputs, 1e-5) <= 1e-10
    np.testing.assert_allclose(fast.outputs, full.outputs, atol=1e-9)


def test_reference_gram_round_meets_tol():
    labels, phi, given, y0 = _problem(gram="reference", n=15)
    solution = newton.solve_round(phi, y0, 1e-3, None, tol=1e-10, max_iter=200, start=np.full_like(y0, 1 / K))
    assert residual(phi, y0, solution.outputs, 1e-3) <= 1e-10


def test_continuation_in_lambda_reaches_the_same_kind_of_round():
    labels, phi, given, y0 = _problem(gram="reference", n=15)
    solution = newton.solve_by_continuation(phi, y0, 1e-3, tol=1e-10, max_iter=100, steps=3)
    assert residual(phi, y0, solution.outputs, 1e-3) <= 1e-10
    assert solution.iterations >= 4


def test_unreachable_tol_fails_with_the_residual_reached():
    labels, phi, given, y0 = _problem()
    with pytest.raises(newton.ConvergenceError, match=r"residual \d\.\d+e"):
        newton.solve_round(phi, y0, 1e-4, full_spectrum(phi), tol=1e-300, max_iter=1000)
    with pytest.raises(newton.ConvergenceError, match="--max-iter 1 "):
        newton.solve_round(phi, y0, 1e-4, full_spectrum(phi), tol=1e-10, max_iter=1)


def test_very_large_lambda_gives_uniform_outputs():
    config = dataclasses.replace(SMALL, wd=(1e8,))
    point = experiment.run_point(config, experiment.prepare(config), 1e8, 0.4)
    assert np.abs(point.outputs[1:] - 1.0 / K).max() < 1e-7
    assert point.undetermined[-1] == K * N_PER  # uniform to within tol: argmax is not resolved


def test_clean_labels_stay_fully_accurate_every_round():
    config = dataclasses.replace(SMALL, corruption=(0.0,), rounds=4)
    point = experiment.run_point(config, experiment.prepare(config), 1e-3, 0.0)
    assert np.all(point.accuracy[:, [0, 2]] == 100.0)
    assert np.all(np.isnan(point.accuracy[:, 1]))
    assert np.all(point.residual <= config.tol)


# --- the linearised closed form -----------------------------------------------------------------


def test_closed_form_equals_repeated_linear_solves():
    labels, phi, given, y0 = _problem(n=25)
    lbd, rounds = 1e-3, 6
    n = phi.shape[0]
    closed = approx.closed_form(full_spectrum(phi), y0, lbd)
    lu = approx.direct(phi, y0, lbd)
    previous = y0
    for _ in range(rounds):
        # (1 + Phi (Y_{t-1} - Y) / (N lbd)) / K = Y  <=>  (K N lbd I + Phi) Y = N lbd 1 + Phi Y_{t-1}
        solved = np.linalg.solve(K * n * lbd * np.eye(n) + phi, n * lbd + phi @ previous)
        expected = next(closed)
        np.testing.assert_allclose(expected, solved, atol=1e-10, rtol=0)
        np.testing.assert_allclose(next(lu), solved, atol=1e-10, rtol=0)
        assert residual(phi, previous, expected, lbd, linear=True) <= 1e-10
        previous = solved


def _shrink_mismatch(shrink_factors) -> float:
    """Largest gap between ``shrink_factors`` and the shrink measured from an independent solve.

    The linearised round, Y = (1 + Phi (Y_0 - Y) / (N lambda)) / K, is solved as one dense float64
    linear system in the N K unknowns vec(Y), written straight from the map (no eigenvectors, no
    centring, no rearrangement); then the centred outputs are projected on each eigenvector u_j of
    Phi and the measured shrink u_j^T (Y_1 - 1/K) / u_j^T (Y_0 - 1/K) is compared with the formula.
    """
    labels, phi, given, y0 = _problem(n=8)
    n, lbd = phi.shape[0], 2e-3
    gain = np.kron(np.eye(K), phi) / (n * lbd * K)  # vec(Phi Y / (N lambda K)), column-major vec
    system = np.eye(n * K) + gain
    rhs = 1.0 / K + gain @ y0.ravel(order="F")
    y1 = np.linalg.solve(system, rhs).reshape((n, K), order="F")
    assert residual(phi, y0, y1, lbd, linear=True) <= 1e-13
    values, vectors = np.linalg.eigh(phi)
    before, after = vectors.T @ (y0 - 1.0 / K), vectors.T @ (y1 - 1.0 / K)
    usable = np.abs(before) > 1e-6  # directions the labels actually excite
    assert usable.sum() > n  # every eigenvalue is tested in some column
    measured = after[usable] / before[usable]
    predicted = np.broadcast_to(shrink_factors(values, K, n, lbd)[:, None], before.shape)[usable]
    return float(np.abs(measured - predicted).max())


def test_shrink_factors_match_an_independent_linear_solve():
    assert _shrink_mismatch(approx.shrink_factors) < 1e-9


@pytest.mark.parametrize(
    "wrong",
    [
        lambda mu, k, n, lbd: mu / (mu + n * lbd),  # K forgotten
        lambda mu, k, n, lbd: mu / (mu + k * n * lbd * 1.01),  # lambda off by 1%
        lambda mu, k, n, lbd: (mu / (mu + k * n * lbd)) ** 2,  # two rounds instead of one
    ],
)
def test_the_shrink_check_catches_a_wrong_formula(wrong):
    assert _shrink_mismatch(wrong) > 1e-4


def test_shrink_factors_average_small_eigenvalues_first():
    shrink = approx.shrink_factors(np.array([0.5, 10.0, 200.0]), 4, 100, 1e-3)
    assert 0 < shrink[0] < shrink[1] < shrink[2] < 1


# --- the smallest lambda ------------------------------------------------------------------------


@pytest.mark.parametrize("approx_map", [False, True])
def test_the_smallest_wd_solves_and_below_it_is_refused(approx_map):
    """At config.smallest_wd every solve meets tol; a smaller lambda is refused up front, and the value
    the message suggests is accepted and solves."""
    config = dataclasses.replace(SMALL, approx=approx_map, epsilon=0.05, n=15)
    lbd = smallest_wd(config)
    at_limit = dataclasses.replace(config, wd=(lbd,)).validate()
    point = experiment.run_point(at_limit, experiment.prepare(at_limit), lbd, 0.4)
    assert np.all(point.residual <= config.tol) and point.iterations.max() <= 40
    with pytest.raises(
        UsageError,
        match=rf"--wd {lbd / 2:g} is too small .* smallest --wd that works here is "
        r"(\S+)",
    ) as refused:
        dataclasses.replace(config, wd=(lbd / 2,)).validate()
    suggested = float(str(refused.value).split("works here is ")[1].split()[0])
    assert lbd <= suggested < 1.1 * lbd
    dataclasses.replace(config, wd=(suggested,)).validate()


@pytest.mark.parametrize("value", [1.75e-9, 2.25e-9, 1.0e-9, 9.99e-7, 7.7834e-7, 3.0000001e-5])
def test_the_suggested_wd_is_rounded_up(value):
    from gram_theory.config import _rounded_up

    text = _rounded_up(value)
    assert float(text) >= value and float(text) < 1.11 * value and len(text.replace("e-0", "e-")) <= 7


def test_the_linear_maps_rounding_floor_is_real():
    """Ten times below the smallest lambda, the closed form's own residual exceeds tol: the refusal
    is not overcautious by more than the margin it states."""
    config = dataclasses.replace(SMALL, approx=True, n=15)
    lbd = smallest_wd(config) / 10
    with pytest.raises(newton.ConvergenceError, match="residual .* > tol"):
        experiment.run_point(config, experiment.prepare(config), lbd, 0.4)


def test_a_lost_definiteness_is_a_convergence_error_not_a_crash():
    """Far below the smallest lambda the Newton system loses definiteness in rounding: one-line error."""
    labels, phi, given, y0 = _problem(n=50)
    with pytest.raises(newton.ConvergenceError):
        newton.solve_round(phi, y0, 1e-20, full_spectrum(phi), tol=1e-10, max_iter=50)


# --- the Adam baseline --------------------------------------------------------------------------


@pytest.mark.parametrize("linear", [False, True])
def test_adam_gradient_matches_finite_differences(linear):
    labels, phi, given, y0 = _problem(gram="reference", n=5)
    rng = np.random.default_rng(0)
    outputs = rng.dirichlet(np.ones(K), size=y0.shape[0])
    scale = 1.0 / (y0.shape[0] * 0.05)
    loss, grad = adam.loss_and_gradient(phi, phi.T.copy(), y0, outputs, scale, linear)
    direction = rng.standard_normal(outputs.shape)
    h = 1e-6
    plus, _ = adam.loss_and_gradient(phi, phi.T.copy(), y0, outputs + h * direction, scale, linear)
    minus, _ = adam.loss_and_gradient(phi, phi.T.copy(), y0, outputs - h * direction, scale, linear)
    assert (plus - minus) / (2 * h) == pytest.approx(np.sum(grad * direction), rel=1e-6)
    assert loss == pytest.approx(
        np.sum(
            (
                outputs
                - (softmax(scale * phi @ (y0 - outputs)) if not linear else (1 + scale * phi @ (y0 - outputs)) / K)
            )
            ** 2
        )
    )


def test_adam_rounds_are_reported_unconverged():
    config = dataclasses.replace(SMALL, method="adam", max_iter=30, rounds=1)
    point = experiment.run_point(config, experiment.prepare(config), 1e-3, 0.4)
    assert not point.converged[1:].any()
    assert np.all(point.residual[1:] > config.tol)
    assert np.all(point.iterations[1:] == 30)
    np.testing.assert_allclose(point.outputs[1:].sum(axis=2), 1.0, atol=1e-6)
    assert point.outputs[1:].min() >= 1e-6 * 0.99


def test_adam_stops_by_the_reference_rule():
    labels, phi, given, y0 = _problem()
    settings = adam.AdamSettings(max_steps=5000, stop_loss=1e3)
    result = adam.adam_round(phi.astype(np.float32), y0, 1e-3, settings, np.random.default_rng(0))
    assert result.stopped and result.steps == 1 and result.loss < 1e3


# --- statistics ---------------------------------------------------------------------------------


def test_accuracy_and_softmax_statistics_by_group():
    labels = np.array([0, 1, 2, 0])
    given = np.array([0, 1, 0, 2])  # samples 2 and 3 are noisy
    outputs = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(stats.accuracy(outputs, labels, given), [50.0, 50.0, 50.0])
    table = stats.softmax_statistics(outputs, labels, given)
    np.testing.assert_allclose(table[0, 0], [np.mean([0.7, 0.3]), np.std([0.7, 0.3])])
    np.testing.assert_allclose(table[0, 1], table[0, 0])
    np.testing.assert_allclose(table[0, 2, 0], np.mean([0.2, 0.1, 0.3, 0.4]))
    np.testing.assert_allclose(table[1, 0, 0], np.mean([0.8, 0.2]))
    np.testing.assert_allclose(table[1, 1, 0], np.mean([0.1, 0.3]))
    np.testing.assert_allclose(table[1, 2], [np.mean([0.1, 0.5]), np.std([0.1, 0.5])])


def test_undetermined_counts_ties_within_tol():
    outputs = np.array([[0.5, 0.5 - 1e-12, 0.0], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    assert stats.undetermined(outputs, 1e-10) == 2
    assert stats.undetermined(outputs, 1e-13) == 1


def test_small_lambda_converges_in_few_newton_steps():
    """Accurate Newton directions keep the damped phase short even when M = Phi / (N lambda) is huge."""
    labels = data.class_labels(4, 50)
    phi = data.feature_gram(labels, 4, 0.4, 0.1, 0.05, numpy_rng(0, "gram"))
    y0 = data.one_hot(data.corrupt(labels, 0.5, *data.label_noise(labels, 4, numpy_rng(0, "labels"))), 4)
    solution = newton.solve_round(phi, y0, 1e-8, full_spectrum(phi), tol=1e-10, max_iter=40)
    assert solution.iterations <= 20
    assert residual(phi, y0, solution.outputs, 1e-8) <= 1e-10
