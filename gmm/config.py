"""The settings of a ``gmm_distill.py`` run, validated up front: a frozen :class:`Config` and its check.

Standard library (and ``utils``' light modules) only: the command line builds and validates a
config before numpy, scipy or matplotlib load, so a mistake costs nothing and a Ctrl-C during
start-up ends in one line. Every failure is a :class:`UsageError` naming the flag and a fix.

The library's numeric defaults (:class:`SolverOptions`, :class:`TuneOptions`) live here too, so
that the flags, the config and the solvers share one source of defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from utils import checks
from utils.errors import UsageError

LABELS = ("soft", "hard")
LOSSES = ("bce", "mse")
BIASES = ("learn", "fix")
COMMANDS = ("theory", "simulate", "tune", "real")
MAX_STAGES = 16  # the theory's draws always have this many columns (see gmm.theory.gaussian_draws)
MAX_THREADS = 1024
MIN_M = 8  # real: the fewest training samples (four per class)
FLOAT = 8  # bytes


@dataclass(frozen=True)
class SolverOptions:
    """Numerics of the saddle-point solver.

    ``samples``: Monte Carlo draws, rounded up to a power of two (antithetic pairs included).
    ``damping``: fraction of the old conjugates kept in a plain update, in [0, 1); the mixing of
    the Anderson steps is 1 − damping.
    ``tol``: stop when the largest relative change of a conjugate in one iteration is below it.
    ``max_iter``: iterations per stage before :class:`gmm.theory.NotConverged`.
    """

    samples: int = 16384
    seed: int = 0
    tol: float = 1e-8
    damping: float = 0.0
    max_iter: int = 2000


@dataclass(frozen=True)
class TuneOptions:
    """Search space and effort. Ranges are (low, high) with 0 < low < high."""

    max_stages: int = 3
    lambda_range: tuple[float, float] = (1e-3, 1e3)
    beta_range: tuple[float, float] = (1e-2, 1e2)
    stop_tol: float = 1e-4
    search_samples: int = 2048
    grid_points: int = 7


@dataclass(frozen=True)
class Config:
    """Every setting of every subcommand (unused ones keep their defaults); saved beside each result.

    ``stages`` is T, the number of trained models (the teacher and T − 1 students): the command
    line's ``--rounds R`` is T − 1. ``corruption`` is the label-flip probability θ.
    """

    command: str
    alphas: tuple[float, ...] = (2.0,)
    rho: float = 0.5
    delta: float = 1.0
    corruption: float = 0.2
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
    threads: int = 0
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

    @property
    def rounds(self) -> int:
        return self.stages - 1

    def lambdas_or_default(self) -> tuple[float, ...]:
        return self.lambdas or (1.0,) * self.stages

    def betas_or_default(self) -> tuple[float, ...]:
        return self.betas or (1.0,) * (self.stages - 1)

    def solver(self) -> SolverOptions:
        return SolverOptions(self.samples, self.seed, self.tol, self.damping, self.max_iter)

    def tuning(self) -> TuneOptions:
        return TuneOptions(
            self.stages, self.lambda_range, self.beta_range, self.stop_tol, self.search_samples, self.grid_points
        )

    def cpu_threads(self) -> int:
        """The thread count the work runs with: ``--threads``, or (0, automatic) one. The theory's products
        are tiny and the simulations' fits matrix-vector bound, and on a shared CPU two threads lost badly
        (validation at N = 2000: 94 s against 14 s on one thread)."""
        return self.threads or 1

    def digest(self, identity: str = "") -> str:
        """A short hash of the settings (and of ``identity``, e.g. the feature set's): names the outputs."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True) + identity
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]

    def validate(self) -> "Config":
        """Everything a user can get wrong, checked before any work; returns the config."""
        checks.choice("the subcommand", self.command, COMMANDS)
        if not self.alphas:
            raise UsageError("--alpha needs at least one value")
        if not 1 <= self.stages <= MAX_STAGES:
            raise UsageError(
                f"--rounds must lie in 0..{MAX_STAGES - 1} (--stages T = R + 1 in 1..{MAX_STAGES}), "
                f"got {self.stages - 1} rounds"
            )
        if self.lambdas and len(self.lambdas) != self.stages:
            raise UsageError(
                f"--lambdas needs one value per model: {self.stages} for --rounds {self.rounds} "
                f"(the teacher and {self.rounds} students), got {len(self.lambdas)}"
            )
        if self.betas and len(self.betas) != self.rounds:
            raise UsageError(
                f"--betas needs one value per student: {self.rounds} for --rounds {self.rounds}, got {len(self.betas)}"
            )
        for labels in self.labels:
            for alpha in self.alphas:
                check_point(
                    alpha,
                    self.rho,
                    self.delta,
                    self.corruption,
                    self.lambdas_or_default(),
                    self.betas_or_default(),
                    labels,
                    self.loss,
                    self.bias,
                )
        checks.integer("--samples", self.samples, 16)
        checks.seed("--seed", self.seed)
        checks.positive("--tol", self.tol)
        checks.interval("--damping", self.damping, 0, 1, high_open=True)
        checks.integer("--max-iter", self.max_iter, 1)
        checks.integer("--trials", self.trials, 2)
        if self.N is not None:
            checks.integer("--N", self.N, 2)
        elif self.command == "simulate":
            raise UsageError("simulate needs the dimension --N")
        checks.integer("--threads", self.threads, 0, MAX_THREADS)
        for flag, (low, high) in (("--lambda-range", self.lambda_range), ("--beta-range", self.beta_range)):
            checks.positive(flag, low)
            checks.positive(flag, high)
            if not low < high:
                raise UsageError(f"{flag} needs LOW < HIGH, got {low:g} {high:g}")
        checks.non_negative("--stop-tol", self.stop_tol)
        checks.integer("--search-samples", self.search_samples, 16)
        checks.integer("--grid-points", self.grid_points, 2)
        checks.integer("--M", self.M, MIN_M)
        if self.command == "real":
            self._validate_real()
        else:
            checks.interval("--validation", self.validation, 0, 1, high_open=True)
        self._validate_memory()
        return self

    def _validate_real(self) -> None:
        checks.interval("--validation", self.validation, 0, 1, low_open=True, high_open=True)
        if (self.dataset is None) == (self.features is None):
            raise UsageError("real needs one of --dataset NAME or --features FILE")
        if self.classes is None or len(self.classes) != 2:
            raise UsageError("--classes needs two class indices, e.g. --classes 3 8")
        for index in self.classes:
            checks.integer("--classes", index, 0)
        if self.classes[0] == self.classes[1]:
            raise UsageError(f"--classes needs two different class indices, got {self.classes[0]} twice")
        if self.features is not None:
            path = Path(self.features).expanduser()
            if path.is_dir():
                raise UsageError(f"--features {path} is a folder; give a feature file (.npz or .pt)")
            if not path.is_file():
                raise UsageError(f"--features {path} does not exist; give a feature file (.npz or .pt)")

    def _validate_memory(self) -> None:
        """Refuse sizes whose arrays cannot fit in the memory available now, with the estimate."""
        if self.command in ("theory", "simulate", "tune"):
            draws = draws_bytes(self.samples, self.stages)
            if self.command == "tune":
                draws += draws_bytes(self.search_samples, self.stages)
            checks.memory(f"--samples {self.samples}", draws, "use fewer --samples (or --search-samples)")
        if self.command in ("simulate", "tune") and self.N is not None:
            need = simulation_bytes(self.N, max(self.alphas), self.trials, self.stages, self.validation, self.loss)
            checks.memory(
                f"--N {self.N} with --alpha {max(self.alphas):g} and --trials {self.trials}",
                need,
                "use a smaller --N, --alpha or --trials",
            )
        if self.command == "tune":
            grid = FLOAT * 4.0 * float(self.grid_points) ** (2 if "soft" in self.labels else 1)
            checks.memory(f"--grid-points {self.grid_points}", grid, "use fewer --grid-points")
        if self.command == "real":
            checks.memory(f"--trials {self.trials}", 4096.0 * self.trials, "use fewer --trials")


def check_point(
    alpha: float,
    rho: float,
    delta: float,
    corruption: float,
    lambdas: Sequence[float],
    betas: Sequence[float],
    labels: str,
    loss: str,
    bias: str,
) -> None:
    """The model's domain: raise :class:`UsageError` naming the flag of the first value outside it."""
    checks.positive("--alpha", alpha)
    checks.interval("--rho", rho, 0, 1, low_open=True, high_open=True)
    checks.positive("--delta", delta)
    checks.interval("--corruption", corruption, 0, 0.5, high_open=True)
    if not lambdas:
        raise UsageError("--lambdas needs one value per model (at least one)")
    for value in lambdas:
        checks.positive("--lambdas", value)
    for value in betas:
        checks.positive("--betas", value)
    if len(betas) != len(lambdas) - 1:
        raise UsageError(
            f"--betas needs one value per student ({len(lambdas) - 1} for {len(lambdas)} models), got {len(betas)}"
        )
    checks.choice("--labels", labels, LABELS)
    checks.choice("--loss", loss, LOSSES)
    checks.choice("--bias", bias, BIASES)


def draws_bytes(samples: int, stages: int) -> float:
    """Memory of the theory at ``samples`` draws: the draws (two copies) and ~16 + T (4, n) arrays."""
    n = 2.0 ** math.ceil(math.log2(max(samples, 4)))
    return FLOAT * n * (2 * MAX_STAGES + 4 * (16 + stages))


def simulation_bytes(N: int, alpha: float, trials: int, stages: int, validation: float, loss: str) -> float:
    """Memory of one simulated trial (inputs, their draw's temporaries, Gram or Hessian) and the results."""
    M = max(2.0, alpha * N)
    rows = M * (1.0 + validation)
    matrix = min(M, float(N)) ** 2 * (2 if loss == "mse" else 0) + (float(N) + 1) ** 2 * (N <= 128)
    return FLOAT * (3.0 * rows * N + matrix + 2.0 * trials * (stages + 1))
