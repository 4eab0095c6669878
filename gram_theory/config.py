"""The settings of one solver run, their validation, and the names of the files a run writes.

Standard library only: ``numerical_solving.py`` builds and checks the config, and probes every
output path, before numpy or scipy is imported.

Vocabulary. ``rounds`` R counts the students after the teacher, so a run makes R + 1 solves; the
saved ``outputs[t]`` is the given labels for t = 0, the teacher for t = 1 and student t - 1 for
t >= 2 (``utils.stages.Stage.from_solver_round``). ``wd`` is the regularisation lambda of the maths
(the authors' ``--lbd``) and ``corruption`` the label noise rate eta (the authors' ``--eta``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

from utils import checks
from utils.errors import UsageError

METHODS = ("newton", "adam")
GRAMS = ("features", "reference")
DEFAULT_THREADS = 1  # measured fastest at the defaults: docs/solver.md, "Threads"

# float64 unit roundoff.
_ROUNDOFF = 2.0**-53
# Largest scale |Phi| / (N lambda) of the logits for which the Newton solver's directions stay
# accurate enough to converge (measured over K = 2..10, n = 20..500, c, d and epsilon varied: every
# problem solved at 3e8, most failed at 1e9; this leaves a factor 3 to spare).
KAPPA_NEWTON = 1e8
# Adam works in float32: its second moment holds squared gradients of size ~ (2 kappa)^2, which must
# stay below float32's largest value, 3.4e38.
KAPPA_ADAM = 1e18
# Every exact round must meet ``tol``; the linear map's residual cannot be evaluated below a floor
# of order u kappa / K (a rounding of Y times the map's gain; measured up to 2.4 u kappa / K over
# K = 2..10, n = 15..1000), so kappa must keep u kappa / K a factor 16 below tol.
_LINEAR_FLOOR_MARGIN = 16.0
# A max-norm residual of outputs of order 1 is not resolved below a few units in the last place.
TOL_RANGE = (1e-15, 1.0)


@dataclasses.dataclass(frozen=True)
class Config:
    """Every flag of ``numerical_solving.py``; saved as JSON beside each result."""

    k: int = 4
    n: int = 500
    wd: tuple[float, ...] = (1e-5,)
    c: float = 0.4
    d: float = 0.1
    corruption: tuple[float, ...] = (0.5,)
    epsilon: float = 0.05
    rounds: int = 9
    max_iter: int = 100_000
    approx: bool = False
    seed: int = 0
    tol: float = 1e-10
    method: str = "newton"
    gram: str = "features"
    threads: int = DEFAULT_THREADS
    out: str = "outputs"
    plots: bool = False
    verbose: bool = False

    # -- derived -------------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.k * self.n

    @property
    def solves(self) -> int:
        """The teacher and the ``rounds`` students: the authors' ``--max_dist``."""
        return self.rounds + 1

    @property
    def points(self) -> int:
        return len(self.wd) * len(self.corruption)

    @property
    def sweep(self) -> bool:
        """More than one (wd, corruption) point: the saved arrays get leading (wd, corruption) axes."""
        return self.points > 1

    @property
    def exact(self) -> bool:
        """Whether every round must meet ``tol`` (Newton, or the closed form with ``approx``)."""
        return self.method != "adam"

    @property
    def map(self) -> str:
        return "linear" if self.approx else "softmax"

    def validate(self) -> "Config":
        """Raise :class:`UsageError` (one line naming the flag and the fix) for settings that cannot run."""
        validate(self)
        return self


# -- validation ---------------------------------------------------------------------------------


def top_eigenvalue(config: Config) -> float:
    """An estimate of Phi's largest eigenvalue from the settings alone (Phi is built later).

    The block matrix's is 1 - c + n (c - d) + N d, exact at epsilon = 0; the feature noise keeps
    unit-norm features, so it changes little. The reference's entry noise can add up to N epsilon.
    """
    value = 1.0 - config.c + config.n * (config.c - config.d) + config.n_samples * config.d
    if config.gram == "reference":
        value += config.n_samples * config.epsilon
    else:  # the noise adds epsilon² to every squared norm: negligible at the default, dominant when epsilon >> 1
        value *= 1.0 + config.epsilon * config.epsilon
    return value


def smallest_wd(config: Config) -> float:
    """The smallest lambda this run can solve and certify in floating point (see docs/solver.md).

    The logits are Phi (Y_{t-1} - Y) / (N lambda): their scale kappa = |Phi| / (N lambda) multiplies
    every rounding error in Y. Newton's directions stop being accurate beyond ``KAPPA_NEWTON``; the
    linear map's residual has a rounding floor u kappa / K that must stay below ``tol``; Adam's
    float32 moments overflow beyond ``KAPPA_ADAM``.
    """
    scale = top_eigenvalue(config) / config.n_samples
    if config.method == "adam":
        return scale / KAPPA_ADAM
    if config.approx:
        return _LINEAR_FLOOR_MARGIN * _ROUNDOFF * scale / (config.k * config.tol)
    return scale / KAPPA_NEWTON


def bytes_needed(config: Config) -> int:
    """A generous estimate of the peak memory: a few N x N float64 arrays while Phi is built, the dense
    Jacobian for a non-symmetric Phi, and every round's outputs (kept, then saved)."""
    n = config.n_samples
    peak = 6 * 8 * n * n
    if config.gram == "reference" and config.exact and not config.approx:
        peak += 2 * 8 * (n * (config.k - 1)) ** 2
    peak += 2 * 8 * config.points * (config.solves + 1) * n * config.k
    return peak


def validate(config: Config) -> None:
    """Raise :class:`UsageError` naming the flag for every setting that cannot run, before any work."""
    checks.integer("--k", config.k, 2)
    checks.integer("--n", config.n, 1)
    checks.integer("--rounds", config.rounds, 0)
    checks.integer("--max-iter", config.max_iter, 1)
    checks.seed("--seed", config.seed)
    checks.integer("--threads", config.threads, 0, 4096)
    checks.choice("--method", config.method, METHODS)
    checks.choice("--gram", config.gram, GRAMS)
    for flag, value in (("--approx", config.approx), ("--plots", config.plots), ("--verbose", config.verbose)):
        if not isinstance(value, bool):
            raise UsageError(f"{flag} must be True or False, got {value!r}")
    d = checks.interval("--d", config.d, 0.0, 1.0, high_open=True)
    c = checks.interval("--c", config.c, 0.0, 1.0, high_open=True)
    if c <= d:
        raise UsageError(f"--c must be greater than --d (got c={c:g}, d={d:g})")
    epsilon = checks.non_negative("--epsilon", config.epsilon)
    if not math.isfinite(config.n_samples * (1.0 + epsilon) * (1.0 + epsilon)):
        raise UsageError(
            f"--epsilon {epsilon:g} is too large: Phi's entries (about epsilon² N) overflow float64; "
            f"epsilon is the noise-to-signal ratio, e.g. 0.05"
        )
    low, high = TOL_RANGE
    checks.interval("--tol", config.tol, low, high, high_open=True)
    for eta in config.corruption:
        checks.interval("--corruption", eta, 0.0, 1.0)
    for lbd in config.wd:
        checks.positive("--wd", lbd)
        if not math.isfinite(config.k * config.n_samples * lbd):
            raise UsageError(f"--wd {lbd:g} is too large: K N lambda overflows; every output would be 1/K")
    for flag, values in (("--wd", config.wd), ("--corruption", config.corruption)):
        if not values:
            raise UsageError(f"{flag} needs at least one value")
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:
            raise UsageError(f"{flag} lists {repeated[0]:g} more than once; give each value once")
    smallest = smallest_wd(config)
    for lbd in config.wd:
        if lbd < smallest:
            raise UsageError(_too_small(config, lbd, smallest))
    checks.memory(
        f"K = {config.k}, n = {config.n} (N = {config.n_samples}), {config.points} point(s) of {config.solves} solves",
        bytes_needed(config),
        "lower --n, --rounds or the number of sweep points",
    )


def _rounded_up(value: float) -> str:
    """``value`` to two significant digits, rounded up, so that the printed value itself is accepted."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    text = f"{math.ceil(value / step) * step:.2g}"
    return text if float(text) >= value else f"{float(text) + step:.2g}"


def _too_small(config: Config, lbd: float, smallest: float) -> str:
    kappa = top_eigenvalue(config) / (config.n_samples * lbd)
    where = f"at K={config.k}, n={config.n}"
    if config.method == "adam":
        why = f"Phi/(N lambda) would reach {kappa:.1e}: Adam's float32 moments overflow beyond {KAPPA_ADAM:.0e}"
    elif config.approx:
        why = (
            f"Phi/(N lambda) would reach {kappa:.1e}, so the linear map's rounding floor "
            f"{_ROUNDOFF * kappa / config.k:.1e} exceeds --tol {config.tol:g}"
        )
        return (
            f"--wd {lbd:g} is too small {where}: {why}; the smallest --wd that works here is "
            f"{_rounded_up(smallest)} (or raise --tol)"
        )
    else:
        why = (
            f"Phi/(N lambda) would reach {kappa:.1e}, beyond the {KAPPA_NEWTON:.0e} where float64 Newton "
            "directions lose their accuracy"
        )
    return f"--wd {lbd:g} is too small {where}: {why}; the smallest --wd that works here is {_rounded_up(smallest)}"


# -- identity and file names -------------------------------------------------------------------------

# Settings that do not change the numbers of a run.
_PRESENTATION = ("out", "plots", "verbose")
PHI_SETTINGS = ("k", "n", "c", "d", "epsilon", "seed", "gram")


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


def identity(config: Config) -> dict:
    """Every setting that changes a run's numbers (the thread count too: BLAS sums in another order)."""
    values = dataclasses.asdict(config)
    for name in _PRESENTATION:
        values.pop(name)
    return values


def phi_settings(config: Config) -> dict:
    return {name: getattr(config, name) for name in PHI_SETTINGS}


def method_tag(config: Config) -> str:
    if config.method == "adam":
        return "adam-approx" if config.approx else "adam"
    return "approx" if config.approx else "newton"


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The paths a run writes: its arrays, its JSON record, Phi (shared by every run with the same
    ``PHI_SETTINGS``) and, with ``--plots``, its figures."""

    folder: Path
    stem: str
    phi: Path

    @property
    def arrays(self) -> Path:
        return self.folder / f"{self.stem}.npz"

    @property
    def record(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def figure(self, kind: str, lbd: float, eta: float | None = None) -> Path:
        tag = f"wd{lbd:g}" + ("" if eta is None else f"-corruption{eta:g}")
        return self.folder / f"{self.stem}-{kind}-{tag}.png"


def figure_specs(config: Config) -> list[tuple[str, float, float | None]]:
    """(kind, wd, corruption) of every figure ``--plots`` writes, in the order they are drawn."""
    specs: list[tuple[str, float, float | None]] = []
    for lbd in config.wd:
        if len(config.corruption) > 1:
            specs.append(("accuracy", lbd, None))
        for eta in config.corruption:
            specs += [("spectrum", lbd, eta), ("simplex", lbd, eta)]
    return specs


def run_files(config: Config) -> RunFiles:
    """Short names without commas: ``newton-k4-n500-<8 hex>`` for the run (a digest of :func:`identity`)
    and ``phi-features-k4-n500-<8 hex>.npy`` for Phi (a digest of :func:`phi_settings`)."""
    folder = Path(config.out)
    stem = f"{method_tag(config)}-k{config.k}-n{config.n}-{_digest(identity(config))[:8]}"
    phi = folder / f"phi-{config.gram}-k{config.k}-n{config.n}-{_digest(phi_settings(config))[:8]}.npy"
    return RunFiles(folder, stem, phi)


def planned_paths(config: Config) -> list[Path]:
    """Every file the run writes (Phi only when it is not there yet is decided later)."""
    files = run_files(config)
    paths = [files.arrays, files.record]
    if config.plots:
        paths += [files.figure(*spec) for spec in figure_specs(config)]
    return paths
