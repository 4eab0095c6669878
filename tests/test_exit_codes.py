"""The exit-code table of README.md's "Conventions" is what the scripts do: every example of every row runs.

Rows 0, 1 and 2 run in-process in a scratch folder that holds a small run store of ``cc`` runs of the
dataset ``toy`` (at ``checkpoints/``, the default store), an empty store, and a file that is not an
archive; the signal rows run a script as a subprocess that receives the signal while it starts up.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store_factory import publish, toy_config

REPO = Path(__file__).resolve().parents[1]
SIGNALS = {130: "SIGINT", 143: "SIGTERM"}
# What the one-line error of an example must say, so that a row is checked for its reason, not by chance.
REASONS = {
    "python3 report.py --dataset nosuch": "unknown dataset 'nosuch'",
    "python3 report.py -c store --dataset cifar100": "no runs of dataset cifar100 in the store",
    "python3 report.py -c store --ctype sym": "toy: no runs with --ctype sym",
    "python3 report.py -c empty-store": "no runs to report",
    "python3 sweep.py missing.toml": "no sweep file missing.toml",
    "python3 train_linear.py --features missing.npz": "does not exist",
    "python3 train_linear.py --features not-an-archive.npz": "is not a .npz archive",
}


def table_rows() -> dict[int, list[str]]:
    """exit status -> the commands (in backticks) of its row, from README.md's Conventions section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Conventions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|[^|]*\|(.*)\|\s*$", line)
        if match:
            rows[int(match.group(1))] = re.findall(r"`(python3 [^`]+)`", match.group(2))
    return rows


ROWS = table_rows()
CASES = [(status, command) for status, commands in sorted(ROWS.items()) for command in commands]


def test_the_table_has_every_row_with_examples():
    assert set(ROWS) == {0, 1, 2, 130, 143}
    assert all(ROWS.values()), "every row shows at least one command"
    assert set(REASONS) <= {command for _, command in CASES}, "a reason names a command the table no longer shows"


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch) -> Path:
    for seed in (0, 1):
        for stage in ("0", "1"):
            publish(tmp_path / "checkpoints", toy_config("toy", 0.5, stage, seed), 80.0 + seed)
            publish(tmp_path / "store", toy_config("toy", 0.5, stage, seed), 80.0 + seed)
    (tmp_path / "empty-store").mkdir()
    (tmp_path / "not-an-archive.npz").write_text("not a zip file\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("status, command", [c for c in CASES if c[0] not in SIGNALS], ids=lambda c: str(c))
def test_each_example_exits_as_its_row_says(scratch, capsys, status, command):
    _, script, *argv = shlex.split(command)
    main = importlib.import_module(script.removesuffix(".py").replace("/", ".")).main
    try:
        code = main(argv)
    except SystemExit as exit:  # --help ends through argparse
        code = exit.code
    stderr = capsys.readouterr().err
    assert code == status, f"{command}: exit {code}, the README says {status}: {stderr}"
    if status != 0:
        assert stderr.startswith("error:") and stderr.count("\n") == 1, stderr
        assert REASONS.get(command, "") in stderr, stderr


@pytest.mark.parametrize("status, command", [c for c in CASES if c[0] in SIGNALS], ids=lambda c: str(c))
def test_signals_exit_as_their_rows_say(tmp_path, status, command):
    # The test hook of utils/errors.py sends the signal when numpy is first imported: deterministic, no sleep.
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": f"numpy:{SIGNALS[status]}"}
    _, script, *argv = shlex.split(command.split(",")[0])
    result = subprocess.run(
        [sys.executable, str(REPO / script), *argv, "--out", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status, result.stderr
    assert result.stderr.strip().splitlines()[-1] in ("interrupted", "terminated")
