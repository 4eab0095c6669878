"""Fault suite of gmm_distill.py: bad values, bad feature files, refused and colliding outputs, signals.

Every case must end in one ``error:`` line naming the flag or file (and a fix), the documented exit
status, no traceback, and nothing added, changed or removed in the sandbox (the working directory,
where the default output folder ./results/gmm lives). Signals at start-up run the script as a
subprocess (slow tier); signals during the work and the output writes run in-process.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_script
from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal, run_case, snapshot

THEORY = ["theory", "--samples", "256"]
SCRIPT = "gmm_distill"


def _features(path: Path, per_class=(30, 30, 30), test_per_class=(10, 10, 10), dim: int = 5, nan: bool = False):
    """A small feature file: class k has ``per_class[k]`` training and ``test_per_class[k]`` test rows (0 allowed)."""
    rng = np.random.default_rng(0)
    train_labels = np.repeat(np.arange(len(per_class)), per_class)
    test_labels = np.repeat(np.arange(len(test_per_class)), test_per_class)
    train = rng.normal(size=(train_labels.size, dim)) + train_labels[:, None]
    if nan:
        train[3, 1] = np.nan
    np.savez(
        path,
        train_features=train.astype(np.float32),
        train_labels=train_labels,
        test_features=(rng.normal(size=(test_labels.size, dim)) + test_labels[:, None]).astype(np.float32),
        test_labels=test_labels,
        class_names=np.array([f"c{k}" for k in range(len(per_class))]),
    )


def features(name: str, **kwargs):
    return lambda sandbox: _features(sandbox / name, **kwargs)


def write(name: str, data: bytes):
    return lambda sandbox: (sandbox / name).write_bytes(data)


def folder(name: str):
    return lambda sandbox: (sandbox / name).mkdir(parents=True)


def result_folder(argv: list[str]):
    """Put a folder where ``argv``'s JSON document would go."""
    from gmm_distill import build_parser, config_from_args

    def setup(sandbox: Path) -> None:
        args = build_parser().parse_args(argv)
        config = config_from_args(args)
        (sandbox / args.out / f"{config.command}-{config.digest()}.json").mkdir(parents=True)

    return setup


@contextlib.contextmanager
def _refuse_writes(match, code: int):
    """Opening a file for writing whose name ``match``es fails with ``OSError(code)`` (a disk that fills up)."""
    real = {"open": builtins.open, "io_open": io.open}

    def make(original):
        def patched(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and match(os.fspath(file)):
                raise OSError(code, os.strerror(code), os.fspath(file))
            return original(file, mode, *args, **kwargs)

        return patched

    builtins.open, io.open = make(real["open"]), make(real["io_open"])
    try:
        yield
    finally:
        builtins.open, io.open = real["open"], real["io_open"]


def full_disk_at_the_pdf(sandbox: Path):
    return _refuse_writes(lambda path: ".pdf." in Path(path).name, errno.ENOSPC)


def _value(argv, pattern, status=2, **kwargs):
    return Case(SCRIPT, "value", argv, pattern, status, **kwargs)


VALUES = [
    _value(["theory", "--delta", "0"], r"--delta must be positive"),
    _value(["theory", "--delta", "nan"], r"--delta must be a finite number"),
    _value(["theory", "--corruption", "0.5"], r"--corruption must lie in \[0, 0\.5\), got 0\.5"),
    _value(["theory", "--theta", "-0.1"], r"--corruption must lie in \[0, 0\.5\)"),
    _value(["theory", "--rho", "1"], r"--rho must lie in \(0, 1\)"),
    _value(["theory", "--alpha", "1", "-2"], r"--alpha must be positive, got -2"),
    _value(["theory", "--alpha", "inf"], r"--alpha must be a finite number"),
    _value(["theory", "--rounds", "1", "--lambdas", "1", "0"], r"--lambdas must be positive"),
    _value(["theory", "--rounds", "1", "--betas", "-1"], r"--betas must be positive"),
    _value(
        ["theory", "--rounds", "2", "--lambdas", "1", "1"], r"--lambdas needs one value per model: 3 for --rounds 2"
    ),
    _value(["theory", "--stages", "2", "--betas", "1", "2"], r"--betas needs one value per student: 1 for --rounds 1"),
    _value(["theory", "--rounds", "16"], r"--rounds must lie in 0\.\.15"),
    _value(["theory", "--stages", "0"], r"--rounds must lie in 0\.\.15 \(--stages T = R \+ 1 in 1\.\.16\), got -1"),
    _value(["theory", "--damping", "1"], r"--damping must lie in \[0, 1\)"),
    _value(["theory", "--tol", "nan"], r"--tol must be a finite number"),
    _value(["theory", "--max-iter", "0"], r"--max-iter must be at least 1"),
    _value(["theory", "--labels", "medium"], r"--labels.*invalid choice: 'medium'"),
    _value(["theory", "--seed", "-1"], r"--seed.*a seed lies in \[0, 2\*\*32\), got -1"),
    _value(["theory", "--manualSeed", str(2**32)], r"--seed.*a seed lies in \[0, 2\*\*32\)"),
    _value(["theory", "--samples", str(2**70)], r"--samples must be at most 9223372036854775807"),
    _value(
        ["theory", "--samples", str(2**45)],
        r"--samples 35184372088832 needs about .* of memory but .* is "
        r"available; use fewer --samples",
    ),
    _value(["theory", "--threads", "-1"], r"--threads must be at least 0"),
    _value(["theory", "--corr", "0.1"], r"unrecognized arguments: --corr"),
    _value(["simulate", "--N", "1"], r"--N must be at least 2, got 1"),
    _value(
        ["simulate", "--N", "100000000"],
        r"--N 100000000 with --alpha 2 and --trials 20 needs about .*; use a "
        r"smaller --N",
    ),
    _value(["simulate", "--N", "100", "--trials", str(10**15)], r"--trials 1000000000000000 needs about"),
    _value(["simulate", "--validation", "1"], r"--validation must lie in \[0, 1\)"),
    _value(["tune", "--lambda-range", "10", "1"], r"--lambda-range needs LOW < HIGH, got 10 1"),
    _value(["tune", "--grid-points", "10000000"], r"--grid-points 10000000 needs about"),
    _value(["real", "--dataset", "digits", "--classes", "3", "3"], r"--classes needs two different class indices"),
    _value(
        ["real", "--dataset", "digits", "--classes", "3", "8", "--validation", "0"],
        r"--validation must lie in \(0, 1\)",
    ),
    _value(["real", "--features", "missing.npz", "--classes", "0", "1"], r"--features missing\.npz does not exist"),
    _value(
        ["real", "--dataset", "digits", "--classes", "3", "8", "--M", "400"],
        r"--M 400 with --validation 0\.25 needs 250 training samples per class, digits has \d+ in class \d; "
        r"use --M \d+ or less",
    ),
    _value(["real", "--dataset", "digits", "--classes", "3", "10"], r"--classes needs two class indices in 0\.\.9"),
    _value(["real", "--dataset", "no-such-set", "--classes", "0", "1"], r"no-such-set"),
    _value(
        ["theory", "--max-iter", "1"],
        r"RS saddle point of the teacher: no convergence after 1 iterations "
        r".*try a larger --max-iter",
        status=1,
    ),
]

FILES = [
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "lacking.npz", "--classes", "0", "2"],
        r"lacking\.npz: test_labels hold class\(es\) 2 that no training sample has",
        1,
        setup=features("lacking.npz", per_class=(30, 30, 0)),
        name="a class without training samples",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "untested.npz", "--classes", "0", "1"],
        r"--classes: class 1 \(c1\) has no test samples in untested; choose two of the classes present in both "
        r"splits: 0 \(c0\), 2 \(c2\)",
        2,
        setup=features("untested.npz", test_per_class=(10, 0, 10)),
        name="a class without test samples",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "small.npz", "--classes", "0", "1"],
        r"--M 200 .* small has 30 in class 0; use --M 48 or less",
        2,
        setup=features("small.npz"),
        name="too few samples for --M",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "tiny.npz", "--classes", "0", "1", "--M", "8"],
        r"even --M 8 \(the least\) needs 5; choose classes with more samples: 1 \(c1\), 2 \(c2\)",
        2,
        setup=features("tiny.npz", per_class=(3, 30, 30)),
        name="a class too small for any --M",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "empty.npz", "--classes", "0", "1"],
        r"empty\.npz is empty",
        1,
        setup=write("empty.npz", b""),
        name="a 0-byte feature file",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "text.npz", "--classes", "0", "1"],
        r"text\.npz",
        1,
        setup=write("text.npz", b"not a zip archive\n"),
        name="a text file named .npz",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "nan.npz", "--classes", "0", "1"],
        r"nan\.npz.*NaN",
        1,
        setup=features("nan.npz", nan=True),
        name="NaN features",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "features.csv", "--classes", "0", "1"],
        r"features\.csv",
        1,
        setup=write("features.csv", b"1,2\n"),
        name="a feature file of another format",
    ),
    Case(
        SCRIPT,
        "file",
        ["real", "--features", "folder.npz", "--classes", "0", "1"],
        r"--features folder\.npz is a folder",
        2,
        setup=folder("folder.npz"),
        name="--features a folder",
    ),
]

OS = [
    Case(
        SCRIPT,
        "os",
        [*THEORY, "--out", "out"],
        rf"--out: cannot write to .*out.*{OS_PATTERNS[name]}",
        1,
        setup=folder("out") if existing else None,
        fault=refusal("out", OS_CODES[name]),
        name=f"{name} on {'an existing' if existing else 'a new'} --out",
    )
    for name in OS_CODES
    for existing in (True, False)
]

COLLISIONS = [
    Case(
        SCRIPT,
        "collision",
        [*THEORY, "--out", "taken"],
        r"--out taken is a file, not a folder",
        1,
        setup=write("taken", b"mine\n"),
        name="--out an existing file",
    ),
    Case(
        SCRIPT,
        "collision",
        [*THEORY, "--out", "taken/gmm"],
        r"--out: cannot write to taken/gmm: a part of the "
        r"path is a file",
        1,
        setup=write("taken", b"mine\n"),
        name="--out below a file",
    ),
    Case(
        SCRIPT,
        "collision",
        [*THEORY, "--out", "out"],
        r"--out: out/theory-[0-9a-f]{10}\.json is a folder where "
        r"the result goes; remove or rename it",
        1,
        setup=result_folder([*THEORY, "--out", "out"]),
        name="a folder where the result goes",
    ),
]

CASES = VALUES + FILES + OS + COLLISIONS


def unwrap(case) -> Case:
    """The Case of a ``pytest.param`` (a case with marks) or the case itself."""
    return case.values[0] if hasattr(case, "values") else case


def _id(case) -> str:
    return f"{unwrap(case).kind}: {unwrap(case).id}"


@pytest.mark.parametrize("case", CASES, ids=[_id(case) for case in CASES])
def test_fault(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys)


def test_the_suite_covers_every_kind_that_applies():
    kinds = {unwrap(case).kind for case in CASES} | {"signal"}  # signals: below
    assert kinds >= {"value", "file", "os", "collision", "signal"} and len(CASES) >= 15


def check_late_failure(case: Case, sandbox: Path, capsys, status: int, last_line: str):
    """A failure after the work has reported progress: the progress lines, then one last line; no
    traceback and nothing left behind."""
    outcome = run_case(case, sandbox, capsys)
    *progress, last = outcome.stderr.splitlines()
    assert "Traceback" not in outcome.stderr
    assert all(re.match(r"\[ *\d+\.\d s\] \d+/\d+ ", line) for line in progress), progress
    assert re.fullmatch(last_line, last), last
    assert outcome.status == status
    assert not outcome.added and not outcome.changed and not outcome.removed, outcome
    return outcome


def test_a_disk_that_fills_up_while_the_pdf_is_written_leaves_no_file(tmp_path, capsys):
    case = Case(
        SCRIPT,
        "os",
        [*THEORY, "--plot"],
        "",
        fault=full_disk_at_the_pdf,
        name="the disk fills up while the PDF is written",
    )
    check_late_failure(
        case,
        tmp_path,
        capsys,
        1,
        r"error: cannot use .*results/gmm/\.theory-[0-9a-f]{10}\.pdf\..*"
        r"\.tmp: no space left on the device \(disk full\) \(ENOSPC\); free some space or choose "
        r"another disk",
    )


def test_the_suggested_m_works(tmp_path, capsys):
    """The fix an error names must work: rerun with the --M the message suggests."""
    case = next(unwrap(case) for case in FILES if unwrap(case).name == "too few samples for --M")
    outcome = check_case(case, tmp_path, capsys)
    suggested = re.search(r"use --M (\d+) or less", outcome.stderr).group(1)
    fixed = Case(
        SCRIPT, "file", [*case.argv, "--M", suggested, "--trials", "2", "--grid-points", "2", "--loss", "mse"], ""
    )
    assert run_case(fixed, tmp_path, capsys).status == 0


# -- signals ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _signal_when_saving(signum: int, suffix: str):
    """Send ``signum`` to this process when matplotlib starts writing a ``suffix`` file (between PNG and PDF)."""
    from matplotlib.figure import Figure

    real = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if kwargs.get("format") == suffix:
            os.kill(os.getpid(), signum)
        return real(self, fname, *args, **kwargs)

    Figure.savefig = savefig
    try:
        yield
    finally:
        Figure.savefig = real


@pytest.mark.parametrize(
    "signum, status, line", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_between_the_png_and_the_pdf_leaves_nothing(signum, status, line, tmp_path, capsys):
    case = Case(
        SCRIPT,
        "signal",
        [*THEORY, "--plot"],
        "",
        fault=lambda _: _signal_when_saving(signum, "pdf"),
        name=f"{signal.Signals(signum).name} while saving the figures",
    )
    check_late_failure(case, tmp_path, capsys, status, line)


@pytest.mark.slow
@pytest.mark.parametrize("module", ["numpy", "scipy.optimize", "matplotlib", "data"])
@pytest.mark.parametrize("signum, status, line", [("SIGINT", 130, "interrupted\n"), ("SIGTERM", 143, "terminated\n")])
def test_a_signal_while_modules_load_is_one_line(module, signum, status, line, tmp_path):
    argv = (
        ["real", "--dataset", "digits", "--classes", "3", "8", "--M", "40", "--trials", "2", "--plot"]
        if module == "data"
        else [*THEORY, "--plot"]
    )
    before = snapshot(tmp_path)
    result = run_script(
        str(REPO / "gmm_distill.py"), *argv, cwd=tmp_path, env={"SELFDISTILL_SIGNAL_AT_IMPORT": f"{module}:{signum}"}
    )
    if module == "matplotlib":  # it loads for the figure, after the work has reported its progress
        *progress, last = result.stderr.splitlines()
        assert (result.returncode, last + "\n") == (status, line) and all(re.match(r"\[ *\d", p) for p in progress)
    else:
        assert (result.returncode, result.stderr) == (status, line)
    assert snapshot(tmp_path) == before
