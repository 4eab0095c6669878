"""Fault suite of feature_correlation_map.py: bad values, malformed feature files, refusals by the operating
system, colliding output paths and signals during start-up. Every case ends in one ``error:`` line (or
``interrupted`` / ``terminated``) with the documented exit status, and leaves no figure, no table and no
temporary file behind; an earlier result in ``--out`` stays as it was."""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import feature_correlation_map
from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal, run_case

SCRIPT = "feature_correlation_map"
REPO = Path(__file__).resolve().parents[1]


def arrays(classes: int = 2, per_class: int = 3, dim: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A small feature set: ``per_class`` training and one test row per class."""
    rng = np.random.default_rng(seed)
    train_labels = np.repeat(np.arange(classes), per_class)
    return {
        "train_features": rng.normal(size=(train_labels.size, dim)).astype(np.float32),
        "train_labels": train_labels,
        "test_features": rng.normal(size=(classes, dim)).astype(np.float32),
        "test_labels": np.arange(classes),
    }


def features_file(name: str, **changes) -> callable:
    """A setup writing ``name`` (an .npz of :func:`arrays`, keys replaced or removed by ``changes``)."""

    def setup(sandbox: Path) -> None:
        values = {**arrays(), **changes}
        path = sandbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{key: value for key, value in values.items() if value is not None})

    return setup


def raw_file(name: str, content: bytes) -> callable:
    def setup(sandbox: Path) -> None:
        (sandbox / name).write_bytes(content)

    return setup


def both(*setups) -> callable:
    def setup(sandbox: Path) -> None:
        for step in setups:
            step(sandbox)

    return setup


def earlier_result(sandbox: Path) -> None:
    """A finished earlier result in ./reports that a failed command must leave untouched."""
    features_file("tiny.npz")(sandbox)
    (sandbox / "reports").mkdir()
    (sandbox / "reports" / "correlation_stats-tiny.md").write_text("| earlier table |\n")
    (sandbox / "reports" / "tiny-dendrogram.png").write_bytes(b"earlier figure")


def little_memory(sandbox: Path):
    return mock.patch("utils.checks.available_memory", return_value=64 * 2**20)


TINY = features_file("tiny.npz")

CASES = [
    # values, refused before any work (exit 2)
    Case(SCRIPT, "value", ["--per-class", "1"], r"--per-class must be at least 2, got 1", 2),
    Case(
        SCRIPT, "value", ["--per-class", str(2**64)], r"--per-class must be at most", 2, name="per-class beyond int64"
    ),
    Case(SCRIPT, "value", ["--per-class", "2.5"], r"--per-class: invalid int value", 2),
    Case(SCRIPT, "value", ["--seed", "-1"], r"--seed.*\[0, 2\*\*32\), got -1", 2),
    Case(SCRIPT, "value", ["--manualSeed", str(2**32)], r"--seed.*\[0, 2\*\*32\)", 2),
    Case(SCRIPT, "value", ["-d", "synthetic", "synthetic"], r"-d synthetic is given twice", 2),
    Case(
        SCRIPT,
        "value",
        ["--features", "tiny.npz", "./tiny.npz"],
        r"--features tiny\.npz is given twice; give each input once",
        2,
        setup=TINY,
    ),
    Case(
        SCRIPT,
        "value",
        ["--features", "a/tiny.npz", "b/tiny.npz"],
        r"--features a/tiny\.npz and --features b/tiny\.npz would both write the figures tiny-",
        2,
        setup=both(features_file("a/tiny.npz"), features_file("b/tiny.npz")),
    ),
    Case(
        SCRIPT,
        "value",
        ["-d", "synthetic", "--features", "synthetic.npz"],
        r"-d synthetic and --features synthetic\.npz would both write",
        2,
        setup=features_file("synthetic.npz"),
    ),
    Case(SCRIPT, "value", ["-d", "nosuch"], r"unknown dataset 'nosuch'; choose one of: digits", 2),
    Case(
        SCRIPT,
        "value",
        ["--features", "tiny.npz", "--per-class", "10000000"],
        r"--per-class 10000000\).* needs about .* of memory but .* is available; lower --per-class",
        2,
        setup=features_file("tiny.npz", **arrays(per_class=1000)),
        fault=little_memory,
        name="a Gram image too big for the memory",
    ),
    # malformed --features files
    Case(SCRIPT, "file", ["--features", "missing.npz"], r"--features missing\.npz does not exist", 2),
    Case(
        SCRIPT,
        "file",
        ["--features", "empty.npz"],
        r"--features empty\.npz is empty \(0 bytes\)",
        2,
        setup=raw_file("empty.npz", b""),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "folder.npz"],
        r"--features folder\.npz is a folder",
        2,
        setup=lambda sandbox: (sandbox / "folder.npz").mkdir(),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "keys.npz"],
        r"keys\.npz lacks key\(s\) train_features",
        1,
        setup=features_file("keys.npz", train_features=None, x=np.zeros((6, 4))),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "text.npz"],
        r"text\.npz is not a \.npz archive",
        1,
        setup=raw_file("text.npz", b"not an archive\n"),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "nan.npz"],
        r"nan\.npz: train_features contains NaN",
        1,
        setup=features_file("nan.npz", train_features=np.full((6, 4), np.nan, dtype=np.float32)),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "one.npz"],
        r"one\.npz: the training labels hold 1 class; at least two",
        1,
        setup=features_file("one.npz", train_labels=np.zeros(6, dtype=np.int64), test_labels=np.zeros(2, int)),
    ),
    Case(
        SCRIPT,
        "file",
        ["--features", "gap.npz"],
        r"gap\.npz: no training sample has class\(es\) 2 of the 3 classes; remove them",
        1,
        setup=features_file("gap.npz", class_names=np.array(["a", "b", "c"])),
    ),
    # the operating system refuses --out: nothing is computed, no figure and no table appear
    *[
        Case(
            SCRIPT,
            "os",
            ["--features", "tiny.npz"],
            rf"--out: cannot write to \S*reports: .*{OS_PATTERNS[code]}",
            1,
            setup=TINY,
            fault=refusal("reports", OS_CODES[code]),
            name=f"{code} on a new --out",
        )
        for code in OS_CODES
    ],
    Case(
        SCRIPT,
        "os",
        ["--features", "tiny.npz"],
        r"--out: cannot write to \S*reports(/\.write-probe-\w+)?: read-only file system",
        1,
        setup=earlier_result,
        fault=refusal("reports", errno.EROFS),
        name="EROFS on --out holding an earlier result",
    ),
    # output paths that collide with files or folders
    Case(
        SCRIPT,
        "collision",
        ["--features", "tiny.npz", "--out", "taken"],
        r"--out taken is a file, not a folder; give a folder path",
        1,
        setup=both(TINY, raw_file("taken", b"a file\n")),
    ),
    Case(
        SCRIPT,
        "collision",
        ["--features", "tiny.npz", "--out", "taken/reports"],
        r"--out: cannot write to taken/reports: a part of the path is a file",
        1,
        setup=both(TINY, raw_file("taken", b"a file\n")),
    ),
    Case(
        SCRIPT,
        "collision",
        ["--features", "tiny.npz"],
        r"reports/tiny-dendrogram\.pdf is a folder",
        1,
        setup=both(TINY, lambda sandbox: (sandbox / "reports" / "tiny-dendrogram.pdf").mkdir(parents=True)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outcome = check_case(case, tmp_path, capsys)
    assert outcome.stdout == ""


# -- a disk that fills while the figures are written --------------------------------------------


@contextlib.contextmanager
def disk_fills_after(root: Path, writes: int):
    """Writes opened under ``root`` succeed ``writes`` times, then fail with ENOSPC (probes pass: they use os.open)."""
    real = {builtins: builtins.open, io: io.open}
    count = 0

    def make(original):
        def patched(file, mode="r", *args, **kwargs):
            nonlocal count
            if (
                isinstance(file, (str, os.PathLike))
                and set(mode) & set("wax+")
                and root in Path(file).absolute().parents
            ):
                count += 1
                if count > writes:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
            return original(file, mode, *args, **kwargs)

        return patched

    try:
        for module, original in real.items():
            module.open = make(original)
        yield
    finally:
        for module, original in real.items():
            module.open = original


@pytest.mark.parametrize(
    "setup",
    [
        earlier_result,
        pytest.param(TINY, marks=pytest.mark.slow),  # the --out folder the command created is removed again
    ],
    ids=["--out holding an earlier result", "new --out"],
)
def test_disk_full_while_writing_leaves_no_figure_and_no_table(setup, tmp_path, capsys):
    """The reported fault: a full disk left 4 of 17 figures. Now the group appears whole or not at all."""
    case = Case(
        SCRIPT,
        "os",
        ["--features", "tiny.npz"],
        "",
        1,
        setup=setup,
        fault=lambda sandbox: disk_fills_after(sandbox / "reports", 3),
        name="ENOSPC after 3 files written",
    )
    outcome = run_case(case, tmp_path, capsys)
    lines = outcome.stderr.splitlines()
    assert outcome.status == 1 and not outcome.traceback, outcome.stderr
    # the progress lines of the work done, then one error line naming the fourth file and the cause
    # a step's line, or (on a slow machine) the heartbeat of a step still running
    what = "(inputs loaded|datasets analysed)"
    step = rf"\[ *\d+\.\d s\] (1/1 {what}: tiny|[01]/1 {what}, working)"
    assert all(re.match(step, line) for line in lines[:-1]), lines
    assert re.fullmatch(
        r"error: cannot use .*reports/tiny-\S+\.(png|pdf|md): no space left on the device "
        r"\(disk full\) \(ENOSPC\); free some space or choose another disk",
        lines[-1],
    ), lines[-1]
    assert (outcome.added, outcome.changed, outcome.removed) == ([], [], []), outcome
    assert outcome.stdout == ""


# -- signals during start-up (subprocess; slow tier) --------------------------------------------


def in_subprocess(signal_at_import: str):
    """A :attr:`Case.fault` that runs the script as a process, with a signal sent when a module first loads."""

    def run(argv) -> int:
        env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": signal_at_import, "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(
            [sys.executable, str(REPO / f"{SCRIPT}.py"), *argv],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode

    return lambda sandbox: mock.patch.object(feature_correlation_map, "main", run)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, signal_name, status, line",
    [
        ("numpy", "SIGINT", 130, "interrupted"),
        ("numpy", "SIGTERM", 143, "terminated"),
        ("matplotlib", "SIGINT", 130, "interrupted"),  # after --out was created by the probe: it is removed again
        ("matplotlib", "SIGTERM", 143, "terminated"),
    ],
)
def test_signal_at_import(module, signal_name, status, line, tmp_path, capsys):
    case = Case(
        SCRIPT,
        "signal",
        ["--features", "tiny.npz"],
        "",
        status,
        setup=TINY,
        fault=in_subprocess(f"{module}:{signal_name}"),
        name=f"{signal_name} while {module} loads",
    )
    outcome = run_case(case, tmp_path, capsys)
    assert (outcome.status, outcome.stderr, outcome.stdout) == (status, f"{line}\n", "")
    assert (outcome.added, outcome.changed, outcome.removed) == ([], [], [])


def test_enough_cases_of_every_kind():
    kinds = [case.kind for case in CASES]
    assert len(CASES) >= 15 and {"value", "file", "os", "collision"} <= set(kinds)
