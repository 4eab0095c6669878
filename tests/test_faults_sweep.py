"""Fault suite of ``sweep.py``: bad flags, malformed sweep files, refusals by the system and colliding
paths each end in one ``error:`` line before any job runs, with nothing written or changed; a Ctrl-C
while modules load ends in one word (slow tier: subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal

SCRIPT = "sweep"
ROOT = Path(__file__).resolve().parents[1]
GOOD = """name = "tiny"
device = "cpu"
precision = "fp32"
seeds = [0]
corruption = [0.3]
rounds = 1
epochs = 2
[grids.small]
ctype = "sym"
datasets = ["digits"]
"""
PLACES = ["-c", "ck", "--csv-dir", "res"]


def _file(name: str, content: str | bytes):
    def setup(sandbox: Path) -> None:
        path = sandbox / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _good_and(*more):
    def setup(sandbox: Path) -> None:
        _file("s.toml", GOOD)(sandbox)
        for step in more:
            step(sandbox)

    return setup


def _value(argv: list[str], pattern: str, status: int = 2) -> Case:
    return Case(SCRIPT, "value", ["s.toml", *PLACES, *argv], pattern, status, setup=_good_and())


def _bad_file(content: str | bytes, pattern: str, name: str, status: int = 2) -> Case:
    return Case(SCRIPT, "file", ["bad.toml", *PLACES], pattern, status, setup=_file("bad.toml", content), name=name)


CASES = [
    _value(["--parallel", "0"], r"--parallel must be at least 1, got 0"),
    _value(["--cpus-per-job", "0"], r"--cpus-per-job must be at least 1"),
    _value(["--epochs", "0"], r"--epochs must be at least 1"),
    _value(["--epochs", "many"], r"argument --epochs: invalid int value: 'many'"),
    _value(["--time", "0"], r"--time must be at least 1"),
    _value(["--gpus-per-job", "-1"], r"--gpus-per-job must be at least 0"),
    _value(["--mem", "0"], r"--mem must be at least 1"),
    _value(["--address", "auto"], r"--address is a Ray cluster's: add --launcher ray"),
    _value(["--only", "fig9"], r"--only fig9: s\.toml has no grid 'fig9'; its grids: small"),
    _value(["--launcher", "kubernetes"], r"argument --launcher: invalid choice: 'kubernetes'"),
    _bad_file("name = \n", r"bad\.toml is not valid TOML: .*line 1", "TOML syntax"),
    _bad_file(b"\xff\xfe\x00", r"bad\.toml is not UTF-8 text", "not UTF-8"),
    _bad_file(GOOD + "colour = 1\n", r"unknown key 'colour'", "an unknown key"),
    _bad_file(GOOD.replace("seeds = [0]", "seeds = [-1]"), r"seed must be at least 0, got -1", "a negative seed"),
    _bad_file(GOOD.replace("epochs = 2", "epochs = 0"), r"epochs must be", "zero epochs"),
    _bad_file(GOOD.replace('"digits"', '"mnist"'), r"unknown dataset 'mnist'", "an unknown dataset"),
    _bad_file(
        GOOD.replace("corruption = [0.3]", "corruption = [1.5]"), r"corruption must lie in \[0, 1\]", "η above 1"
    ),
    _bad_file(GOOD.replace('device = "cpu"', 'device = "auto"'), r"a sweep fixes its device", "an unfixed device"),
    _bad_file(GOOD + "[datasets.digits]\nlr = nan\n", r"lr must be a finite", "lr nan"),
    Case(SCRIPT, "value", ["missing.toml"], r"no sweep file missing\.toml here nor a shipped one", 2),
    Case(
        SCRIPT,
        "file",
        ["folder.toml"],
        r"folder\.toml is a folder; give a sweep file",
        2,
        setup=lambda sandbox: (sandbox / "folder.toml").mkdir(),
    ),
    Case(
        SCRIPT,
        "collision",
        ["s.toml", "-c", "taken", "--csv-dir", "res"],
        r"-c/--checkpoint taken is a file",
        1,
        setup=_good_and(_file("taken", "x\n")),
    ),
    Case(
        SCRIPT,
        "collision",
        ["s.toml", "-c", "ck", "--csv-dir", "taken"],
        r"--csv-dir taken is a file",
        1,
        setup=_good_and(_file("taken", "x\n")),
    ),
    *(
        Case(
            SCRIPT,
            "os",
            ["s.toml", *PLACES],
            rf"-c/--checkpoint: cannot write to ck: .*{OS_PATTERNS[code]}",
            setup=_good_and(),
            fault=refusal("ck", errno),
            name=f"store {code}",
        )
        for code, errno in OS_CODES.items()
    ),
    *(
        Case(
            SCRIPT,
            "os",
            ["s.toml", *PLACES],
            rf"--csv-dir: cannot write to res: .*{OS_PATTERNS[code]}",
            setup=_good_and(),
            fault=refusal("res", errno),
            name=f"csv folder {code}",
        )
        for code, errno in OS_CODES.items()
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys)


def test_the_suite_covers_every_kind_that_applies():
    assert {case.kind for case in CASES} == {"value", "file", "collision", "os"} and len(CASES) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("module", ["numpy", "sweeping.launch"])
@pytest.mark.parametrize(
    "signal_name, status, line", [("SIGINT", 130, "interrupted\n"), ("SIGTERM", 143, "terminated\n")]
)
def test_signal_while_modules_load(tmp_path, module, signal_name, status, line):
    (tmp_path / "s.toml").write_text(GOOD)
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": f"{module}:{signal_name}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "sweep.py"), "s.toml", *PLACES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert (result.returncode, result.stderr) == (status, line)
    assert [p.name for p in tmp_path.iterdir()] == ["s.toml"], "nothing written"
