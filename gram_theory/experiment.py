"""One run of the synthetic theory: the data it builds once, and its rounds and sweeps.

A run builds the true labels, the Gram matrix and (what its method needs of) the eigendecomposition
once, then, for every (lambda, eta) point, the given labels and solves t = 1..R + 1. Index t = 1 is
the teacher (trained on the given labels), t >= 2 student t - 1; index 0 holds the given labels
(``utils.stages.Stage.from_solver_round``). The settings are a :class:`gram_theory.config.Config`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Iterator

import numpy as np

from gram_theory import adam, approx, data, newton, stats
from gram_theory.config import Config
from gram_theory.fixed_point import residual
from gram_theory.spectrum import Spectrum, full_spectrum, top_spectrum
from utils.seeding import numpy_rng
from utils.stages import Stage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run builds once: true labels (N,), the per-sample noise draws, Phi (N, N) and its spectrum."""

    labels: np.ndarray
    uniforms: np.ndarray
    other: np.ndarray
    gram: np.ndarray
    symmetric: bool
    spectrum: Spectrum | None
    seconds: dict[str, float]


def prepare(config: Config) -> Setup:
    """Build the data and the eigendecomposition the method needs (all of it for ``approx``/plots)."""
    seconds = {}
    start = time.perf_counter()
    labels = data.class_labels(config.k, config.n)
    uniforms, other = data.label_noise(labels, config.k, numpy_rng(config.seed, "labels"))
    gram = data.make_gram(
        config.gram, labels, config.k, config.c, config.d, config.epsilon, numpy_rng(config.seed, "gram")
    )
    symmetric = bool(np.array_equal(gram, gram.T))
    seconds["data"] = time.perf_counter() - start
    start = time.perf_counter()
    spectrum = None
    if config.plots or (config.approx and config.exact and symmetric):
        spectrum = full_spectrum(gram)
    elif config.exact and not config.approx and symmetric:
        spectrum = top_spectrum(gram, config.k, numpy_rng(config.seed, "spectrum"))
    seconds["spectrum"] = time.perf_counter() - start
    return Setup(labels, uniforms, other, gram, symmetric, spectrum, seconds)


@dataclasses.dataclass(frozen=True)
class RoundRecord:
    """One solved round: outputs (N, K), max-norm residual, seconds, converged, iterations (Newton
    iterations or Adam steps; 0 for the closed form), accuracy (3,), softmax statistics (2, 3, 2) and
    the number of samples whose argmax the solve leaves undetermined (``stats.undetermined``)."""

    lbd: float
    eta: float
    round: int
    outputs: np.ndarray
    residual: float
    seconds: float
    converged: bool
    iterations: int
    accuracy: np.ndarray
    softmax: np.ndarray
    undetermined: int


@dataclasses.dataclass(frozen=True)
class PointResult:
    """All rounds of one (lambda, eta) point; arrays have a leading R + 1 axis (index 0: given labels)."""

    lbd: float
    eta: float
    given: np.ndarray
    outputs: np.ndarray
    residual: np.ndarray
    seconds: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    accuracy: np.ndarray
    softmax: np.ndarray
    undetermined: np.ndarray


def _exact_rounds(config: Config, setup: Setup, given: np.ndarray, lbd: float) -> Iterator[tuple[np.ndarray, int]]:
    """(Y_t, Newton iterations) for t = 1, 2, ...; students start from 2 Y_{t-1} - Y_{t-2}.

    The teacher starts from the given labels when Phi is symmetric (the first Newton step is then the
    linearised closed form), and from uniform outputs otherwise, where starting at the one-hot labels
    tends to stall the non-convex solve; a non-convex round that stalls is retried by continuation
    in lambda.
    """
    previous = given
    start = None if setup.symmetric else np.full_like(given, 1.0 / given.shape[1])
    while True:
        try:
            solution = newton.solve_round(
                setup.gram,
                previous,
                lbd,
                setup.spectrum,
                tol=config.tol,
                max_iter=config.max_iter,
                start=start,
                symmetric=setup.symmetric,
            )
        except newton.ConvergenceError as error:
            if setup.symmetric:
                raise
            log.info("%s; continuing in lambda from %g", error, 100 * lbd)
            solution = newton.solve_by_continuation(setup.gram, previous, lbd, tol=config.tol, max_iter=config.max_iter)
        yield solution.outputs, solution.iterations
        start = 2.0 * solution.outputs - previous
        previous = solution.outputs


def _linear_rounds(setup: Setup, given: np.ndarray, lbd: float) -> Iterator[tuple[np.ndarray, int]]:
    if setup.symmetric:
        rounds = approx.closed_form(setup.spectrum, given, lbd)
    else:
        rounds = approx.direct(setup.gram, given, lbd)
    for outputs in rounds:
        yield outputs, 0


def _adam_rounds(
    config: Config, setup: Setup, given: np.ndarray, lbd: float, eta: float
) -> Iterator[tuple[np.ndarray, int]]:
    gram32 = setup.gram.astype(np.float32)
    settings = adam.AdamSettings(max_steps=config.max_iter)
    previous = given
    for t in range(1, config.solves + 1):
        result = adam.adam_round(
            gram32, previous, lbd, settings, numpy_rng(config.seed, "adam", lbd, eta, t), linear=config.approx
        )
        previous = result.outputs.astype(np.float64)
        yield previous, result.steps


def run_point(
    config: Config, setup: Setup, lbd: float, eta: float, on_round: Callable[[RoundRecord], None] | None = None
) -> PointResult:
    """Solve t = 1..R + 1 at one (lambda, eta); exact rounds that miss ``tol`` raise."""
    given_labels = data.corrupt(setup.labels, eta, setup.uniforms, setup.other)
    given = data.one_hot(given_labels, config.k)
    if config.method == "adam":
        rounds = _adam_rounds(config, setup, given, lbd, eta)
    elif config.approx:
        rounds = _linear_rounds(setup, given, lbd)
    else:
        rounds = _exact_rounds(config, setup, given, lbd)
    records = [_given_record(config, setup, given, given_labels, lbd, eta)]
    previous = given
    for t in range(1, config.solves + 1):
        start = time.perf_counter()
        try:
            outputs, iterations = next(rounds)
        except newton.ConvergenceError as error:
            raise newton.ConvergenceError(f"{_where(t, lbd, eta)}: {error}") from None
        seconds = time.perf_counter() - start
        res = residual(setup.gram, previous, outputs, lbd, linear=config.approx)
        converged = res <= config.tol
        if config.exact and not converged:
            raise newton.ConvergenceError(
                f"{_where(t, lbd, eta)}: residual {res:.3e} > tol {config.tol:g} "
                f"(outputs up to {np.abs(outputs).max():.3g}); raise --tol"
            )
        record = RoundRecord(
            lbd,
            eta,
            t,
            outputs,
            res,
            seconds,
            converged,
            iterations,
            stats.accuracy(outputs, setup.labels, given_labels),
            stats.softmax_statistics(outputs, setup.labels, given_labels),
            stats.undetermined(outputs, config.tol),
        )
        log.debug(
            "wd %g corruption %g %s: residual %.2e, %.3f s", lbd, eta, Stage.from_solver_round(t).label, res, seconds
        )
        records.append(record)
        if on_round is not None:
            on_round(record)
        previous = outputs
    return PointResult(
        lbd,
        eta,
        given_labels,
        outputs=np.stack([r.outputs for r in records]),
        residual=np.array([r.residual for r in records]),
        seconds=np.array([r.seconds for r in records]),
        converged=np.array([r.converged for r in records]),
        iterations=np.array([r.iterations for r in records]),
        accuracy=np.stack([r.accuracy for r in records]),
        softmax=np.stack([r.softmax for r in records]),
        undetermined=np.array([r.undetermined for r in records]),
    )


def _given_record(
    config: Config, setup: Setup, given: np.ndarray, given_labels: np.ndarray, lbd: float, eta: float
) -> RoundRecord:
    """Index 0: the given labels themselves, residual 0 by definition."""
    return RoundRecord(
        lbd,
        eta,
        0,
        given,
        0.0,
        0.0,
        True,
        0,
        stats.accuracy(given, setup.labels, given_labels),
        stats.softmax_statistics(given, setup.labels, given_labels),
        0,
    )


def _where(t: int, lbd: float, eta: float) -> str:
    return f"{Stage.from_solver_round(t).label} (wd={lbd:g}, corruption={eta:g})"


def run(
    config: Config,
    setup: Setup,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_point: Callable[[PointResult], None] | None = None,
) -> list[list[PointResult]]:
    """Every point of the sweep, indexed [wd][corruption], in the order given on the command line."""
    points = []
    for lbd in config.wd:
        row = []
        for eta in config.corruption:
            row.append(run_point(config, setup, lbd, eta, on_round))
            if on_point is not None:
                on_point(row[-1])
        points.append(row)
    return points
