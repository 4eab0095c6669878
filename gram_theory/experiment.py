"""One run of the synthetic theory: its config, the data it builds once, and its rounds and sweeps.

A run builds the true labels, the Gram matrix and (what its method needs of) the eigendecomposition
once, then, for every (lambda, eta) point, the given labels and rounds t = 1..R. Round 1 is the
teacher (trained on the given labels), rounds t >= 2 the students; index 0 holds the given labels.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Callable, Iterator

import numpy as np

from gram_theory import adam, approx, data, newton, stats
from gram_theory.fixed_point import residual
from gram_theory.spectrum import Spectrum, full_spectrum, top_spectrum
from utils.errors import UsageError
from utils.seeding import numpy_rng

log = logging.getLogger(__name__)

METHODS = ("newton", "adam")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every flag of ``numerical_solving.py``; saved as JSON beside each result."""

    k: int = 4
    n: int = 500
    lbd: tuple[float, ...] = (1e-5,)
    c: float = 0.4
    d: float = 0.1
    eta: tuple[float, ...] = (0.5,)
    epsilon: float = 0.05
    max_dist: int = 10
    max_iter: int = 100_000
    approx: bool = False
    seed: int = 0
    tol: float = 1e-10
    method: str = "newton"
    gram: str = "features"
    out: str = "outputs"
    plots: bool = False

    @property
    def n_samples(self) -> int:
        return self.k * self.n

    @property
    def sweep(self) -> bool:
        """More than one (lambda, eta) point: the saved arrays get leading (lambda, eta) axes."""
        return len(self.lbd) > 1 or len(self.eta) > 1

    @property
    def exact(self) -> bool:
        """Whether every round must meet ``tol`` (Newton, or the closed form with ``approx``)."""
        return self.method != "adam"


def _bytes_needed(config: Config) -> int:
    """A generous estimate of the peak memory: a few N x N float64 arrays, or the dense Jacobian."""
    n = config.n_samples
    peak = 4 * 8 * n * n
    if config.gram == "reference" and config.exact and not config.approx:
        peak += 2 * 8 * (n * (config.k - 1)) ** 2
    return peak


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def validate(config: Config) -> None:
    """Raise :class:`UserError` (one line naming the fix) for a config that cannot run."""
    if config.k < 2:
        raise UsageError(f"--k must be at least 2 classes (got {config.k})")
    if config.n < 1:
        raise UsageError(f"--n must be at least 1 sample per class (got {config.n})")
    numbers = [("--c", config.c), ("--d", config.d), ("--epsilon", config.epsilon), ("--tol", config.tol),
               *(("--eta", value) for value in config.eta), *(("--lbd", value) for value in config.lbd)]
    for flag, value in numbers:
        if not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number (got {value})")
    if config.d < 0:
        raise UsageError(f"--d must be >= 0 (got {config.d})")
    if config.c <= config.d:
        raise UsageError(f"--c must be greater than --d (got c={config.c:g}, d={config.d:g})")
    if config.c >= 1:
        raise UsageError(f"--c must be below 1, the diagonal (got {config.c:g})")
    for eta in config.eta:
        if not 0 <= eta <= 1:
            raise UsageError(f"--eta must lie in [0, 1] (got {eta:g})")
    for lbd in config.lbd:
        if lbd <= 0:
            raise UsageError(f"--lbd must be positive (got {lbd:g})")
    if config.epsilon < 0:
        raise UsageError(f"--epsilon must be >= 0 (got {config.epsilon:g})")
    if config.max_dist < 1:
        raise UsageError(f"--max_dist must be at least 1 round (got {config.max_dist})")
    if config.max_iter < 1:
        raise UsageError(f"--max_iter must be at least 1 (got {config.max_iter})")
    if config.tol <= 0:
        raise UsageError(f"--tol must be positive (got {config.tol:g})")
    if config.method not in METHODS:
        raise UsageError(f"unknown --method {config.method!r}; choose one of {', '.join(METHODS)}")
    if config.gram not in data.GRAMS:
        raise UsageError(f"unknown --gram {config.gram!r}; choose one of {', '.join(data.GRAMS)}")
    memory = _physical_memory()
    if memory is not None and _bytes_needed(config) > memory:
        raise UsageError(f"N = k n = {config.n_samples} needs about {_bytes_needed(config) / 2**30:.0f} GiB, "
                        f"more than this machine's {memory / 2**30:.0f} GiB; lower --n")


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
    gram = data.make_gram(config.gram, labels, config.k, config.c, config.d, config.epsilon,
                          numpy_rng(config.seed, "gram"))
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


def _exact_rounds(config: Config, setup: Setup, given: np.ndarray, lbd: float
                  ) -> Iterator[tuple[np.ndarray, int]]:
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
            solution = newton.solve_round(setup.gram, previous, lbd, setup.spectrum, tol=config.tol,
                                          max_iter=config.max_iter, start=start, symmetric=setup.symmetric)
        except newton.ConvergenceError as error:
            if setup.symmetric:
                raise
            log.info("%s; continuing in lambda from %g", error, 100 * lbd)
            solution = newton.solve_by_continuation(setup.gram, previous, lbd, tol=config.tol,
                                                    max_iter=config.max_iter)
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


def _adam_rounds(config: Config, setup: Setup, given: np.ndarray, lbd: float, eta: float
                 ) -> Iterator[tuple[np.ndarray, int]]:
    gram32 = setup.gram.astype(np.float32)
    settings = adam.AdamSettings(max_steps=config.max_iter)
    previous = given
    for t in range(1, config.max_dist + 1):
        result = adam.adam_round(gram32, previous, lbd, settings, numpy_rng(config.seed, "adam", lbd, eta, t),
                                 linear=config.approx)
        previous = result.outputs.astype(np.float64)
        yield previous, result.steps


def run_point(config: Config, setup: Setup, lbd: float, eta: float,
              on_round: Callable[[RoundRecord], None] | None = None) -> PointResult:
    """Solve rounds 1..max_dist at one (lambda, eta); exact rounds that miss ``tol`` raise."""
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
    for t in range(1, config.max_dist + 1):
        start = time.perf_counter()
        try:
            outputs, iterations = next(rounds)
        except newton.ConvergenceError as error:
            raise newton.ConvergenceError(f"round {t} (eta={eta:g}, lbd={lbd:g}): {error}") from None
        seconds = time.perf_counter() - start
        res = residual(setup.gram, previous, outputs, lbd, linear=config.approx)
        converged = res <= config.tol
        if config.exact and not converged:
            raise newton.ConvergenceError(
                f"round {t} (eta={eta:g}, lbd={lbd:g}): residual {res:.3e} > tol {config.tol:g} "
                f"(outputs up to {np.abs(outputs).max():.3g}); raise --tol")
        record = RoundRecord(lbd, eta, t, outputs, res, seconds, converged, iterations,
                             stats.accuracy(outputs, setup.labels, given_labels),
                             stats.softmax_statistics(outputs, setup.labels, given_labels),
                             stats.undetermined(outputs, config.tol))
        log.debug("eta %g lbd %g round %d: residual %.2e, %.3f s", eta, lbd, t, res, seconds)
        records.append(record)
        if on_round is not None:
            on_round(record)
        previous = outputs
    return PointResult(
        lbd, eta, given_labels,
        outputs=np.stack([r.outputs for r in records]),
        residual=np.array([r.residual for r in records]),
        seconds=np.array([r.seconds for r in records]),
        converged=np.array([r.converged for r in records]),
        iterations=np.array([r.iterations for r in records]),
        accuracy=np.stack([r.accuracy for r in records]),
        softmax=np.stack([r.softmax for r in records]),
        undetermined=np.array([r.undetermined for r in records]),
    )


def _given_record(config: Config, setup: Setup, given: np.ndarray, given_labels: np.ndarray, lbd: float,
                  eta: float) -> RoundRecord:
    """Index 0: the given labels themselves, residual 0 by definition."""
    return RoundRecord(lbd, eta, 0, given, 0.0, 0.0, True, 0,
                       stats.accuracy(given, setup.labels, given_labels),
                       stats.softmax_statistics(given, setup.labels, given_labels), 0)


def run(config: Config, setup: Setup, on_round: Callable[[RoundRecord], None] | None = None
        ) -> list[list[PointResult]]:
    """Every point of the sweep, indexed [lambda][eta], in the order given on the command line."""
    return [[run_point(config, setup, lbd, eta, on_round) for eta in config.eta] for lbd in config.lbd]
