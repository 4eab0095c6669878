"""Fault suite of ``numerical_solving.py``: bad values, refusals by the system, colliding paths and a
damaged Phi file each end in one ``error:`` line and leave the sandbox as it was; a Ctrl-C or SIGTERM
while numpy loads ends in one word (slow tier: subprocesses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numerical_solving
from gram_theory import storage
from gram_theory.config import run_files
from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal, snapshot
from utils.errors import UserError

SCRIPT = "numerical_solving"
ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--k", "3", "--n", "6", "--rounds", "1", "--wd", "1e-3", "--out", "out"]


def _files(argv: list[str]):
    return run_files(numerical_solving.parse_config(argv))


def _phi(sandbox: Path) -> Path:
    path = sandbox / _files(SMALL).phi
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _true_phi() -> np.ndarray:
    from gram_theory import experiment

    return experiment.prepare(numerical_solving.parse_config(SMALL)).gram


def _write_phi(transform):
    def setup(sandbox: Path) -> None:
        path = _phi(sandbox)
        path.write_bytes(b"")
        with open(path, "wb") as stream:
            transform(stream)

    return setup


def _truncated(stream) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, _true_phi())
    stream.write(buffer.getvalue()[:200])


def _changed(stream) -> None:
    gram = _true_phi()
    gram[2, 3] += 1e-9
    np.save(stream, gram)


def _archive(stream) -> None:
    np.savez(stream, gram=_true_phi())


def _folder_at(which: str):
    def setup(sandbox: Path) -> None:
        files = _files(SMALL)
        (sandbox / (files.phi if which == "phi" else files.arrays)).mkdir(parents=True)

    return setup


def _file_at(relative: str):
    def setup(sandbox: Path) -> None:
        (sandbox / relative).write_text("not a folder\n")

    return setup


def _value(argv: list[str], pattern: str, name: str = "") -> Case:
    return Case(SCRIPT, "value", [*SMALL, *argv], pattern, status=2, name=name)


CASES = [
    # Values, refused before any work (status 2).
    _value(["--wd", "1e-20"], r"--wd 1e-20 is too small at K=3, n=6: .* smallest --wd that works here is \d"),
    _value(["--lbd", "1e-12"], r"--wd 1e-12 is too small .* float64 Newton directions"),
    _value(["--approx", "--wd", "1e-9"], r"--wd 1e-09 is too small .* linear map's rounding floor .* raise --tol"),
    _value(["--method", "adam", "--wd", "1e-40"], r"--wd 1e-40 is too small .* float32"),
    _value(["--wd", "1e308"], r"--wd 1e\+308 is too large"),
    _value(["--wd", "1e-3", "1e-3"], r"--wd lists 0.001 more than once"),
    _value(["--seed", "-1"], r"--seed.*\[0, 2\*\*32\), got -1"),
    _value(["--manualSeed", str(2**32)], r"--manualSeed.*\[0, 2\*\*32\), got 4294967296"),
    _value(["--corruption", "nan"], r"--corruption must be a finite number"),
    _value(["--eta", "0.2", "1.5"], r"--corruption must lie in \[0, 1\], got 1.5"),
    _value(["--c", "0.1", "--d", "0.4"], r"--c must be greater than --d \(got c=0.1, d=0.4\)"),
    _value(["--c", "1"], r"--c must lie in \[0, 1\)"),
    _value(["--epsilon", "inf"], r"--epsilon must be a finite number"),
    _value(["--k", "1"], r"--k must be at least 2"),
    _value(["--n", str(10**20)], r"--n must be at most 9223372036854775807"),
    _value(["--n", "2000000"], r"N = 6000000.* needs about .* of memory but .* available; lower --n"),
    _value(["--max_dist", "0"], r"--max_dist: must be at least 1 \(the teacher alone\)"),
    _value(["--rounds", "-1"], r"--rounds must be at least 0"),
    _value(["--max-iter", "0"], r"--max-iter must be at least 1"),
    _value(["--tol", "0"], r"--tol must lie in \[1e-15, 1\)"),
    _value(["--threads", "-2"], r"--threads must be at least 0"),
    _value(["--method", "lbfgs"], r"--method: invalid choice"),
    _value(["--k", "4.5"], r"--k: invalid int value"),
    # The operating system refuses the output folder (injected: CI runs as root).
    *(
        Case(
            SCRIPT,
            "os",
            SMALL,
            rf"--out: cannot write to out: .*{OS_PATTERNS[code]}",
            fault=refusal("out", errno),
            name=f"--out refused {code}",
        )
        for code, errno in OS_CODES.items()
    ),
    # (utils/outputs.py names the probe file it tried to create inside the folder.)
    Case(
        SCRIPT,
        "os",
        SMALL,
        r"--out: cannot write to \S*out(/\.write-probe-\w+)?: read-only file system",
        setup=lambda sandbox: (sandbox / "out").mkdir(),
        fault=refusal("out", OS_CODES["EROFS"]),
        name="existing --out read-only",
    ),
    # Paths that collide with files or folders.
    Case(
        SCRIPT, "collision", SMALL, r"--out out is a file, not a folder", setup=_file_at("out"), name="--out is a file"
    ),
    Case(
        SCRIPT,
        "collision",
        [*SMALL[:-1], "out/runs"],
        r"--out: cannot write to out/runs: a part of the path is a file",
        setup=_file_at("out"),
        name="--out under a file",
    ),
    Case(
        SCRIPT,
        "collision",
        SMALL,
        r"--out .*newton-k3-n6-\w+\.npz is a folder, not a file",
        setup=_folder_at("run"),
        name="run file is a folder",
    ),
    Case(
        SCRIPT,
        "collision",
        SMALL,
        r"--out: .*phi-features-k3-n6-\w+\.npy is a folder where Phi's file belongs",
        setup=_folder_at("phi"),
        name="Phi file is a folder",
    ),
    # A Phi file already in the folder that is not this run's Phi.
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-features-k3-n6-\w+\.npy is not a readable Phi file \(truncated",
        setup=_write_phi(_truncated),
        name="Phi truncated",
    ),
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-features-k3-n6-\w+\.npy is empty, not Phi's \.npy array",
        setup=_write_phi(lambda stream: None),
        name="Phi empty",
    ),
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-features-k3-n6-\w+\.npy is not a \.npy file, not Phi's \.npy array",
        setup=_write_phi(lambda stream: stream.write(b"1,2,3\n")),
        name="Phi not a .npy file",
    ),
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-.*\.npy holds a different Phi than these settings give",
        setup=_write_phi(_changed),
        name="Phi changed (SHA-256 differs)",
    ),
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-.*\.npy holds a float64 array of shape \(3, 3\), not Phi \(18 x 18",
        setup=_write_phi(lambda stream: np.save(stream, np.eye(3))),
        name="Phi of the wrong shape",
    ),
    Case(
        SCRIPT,
        "state",
        SMALL,
        r"phi-.*\.npy is a zip archive, not Phi's \.npy array",
        setup=_write_phi(_archive),
        name="Phi an archive",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys)


def test_the_suite_covers_every_kind_that_applies():
    kinds = {case.kind for case in CASES}
    assert kinds == {"value", "os", "collision", "state"} and len(CASES) >= 15


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda run: run.with_suffix(".json").write_text('{"format": 2, "phi"'), "is not a readable run record"),
        (lambda run: run.with_suffix(".json").write_text('{"format": 1}'), "is not a solver run record of format 2"),
        (lambda run: run.with_suffix(".npz").write_bytes(b"PK\x03\x04 truncated"), r"\.npz is not a readable run file"),
        (lambda run: next(run.parent.glob("phi-*.npy")).unlink(), "Phi file not found"),
    ],
)
def test_a_damaged_saved_run_is_one_line_when_read(saved_run, tmp_path, damage, pattern):
    folder = Path(shutil.copytree(saved_run, tmp_path / "out"))
    run = folder / _files(SMALL).arrays.name
    damage(run)
    with pytest.raises(UserError, match=pattern) as error:
        storage.recompute_residuals(run)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "out"
    assert numerical_solving.main([*SMALL[:-1], str(folder)]) == 0
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    "signal_name, status, line", [("SIGINT", 130, "interrupted\n"), ("SIGTERM", 143, "terminated\n")]
)
@pytest.mark.parametrize("module", ["numpy", "scipy"])
def test_a_signal_while_the_libraries_load_is_one_line(tmp_path, module, signal_name, status, line):
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": f"{module}:{signal_name}", "PYTHONPATH": str(ROOT)}
    before = snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "numerical_solving.py"), *SMALL],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (status, line)
    assert snapshot(tmp_path) == before
