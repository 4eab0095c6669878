"""The installed commands (pyproject's [project.scripts]): documented in one README table, named by what
the user typed in usage lines and errors, and runs.py's ``-c`` on either side of its subcommand."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

import runs

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_the_readme_table_lists_every_entry_point_with_its_script():
    table = dict(re.findall(r"^\| `(selfdistill-[\w-]+)` \| `(\w+)\.py` \|$", (REPO / "README.md").read_text(), re.M))
    assert table == {command: target.split(":")[0] for command, target in SCRIPTS.items()}


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_usage_lines_name_the_command_typed(command, monkeypatch, capsys):
    module = importlib.import_module(SCRIPTS[command].split(":")[0])
    monkeypatch.setattr(sys, "argv", [f"/usr/local/bin/{command}"])
    assert module.build_parser().prog == command
    with pytest.raises(SystemExit) as exit_info:
        module.build_parser().parse_args(["--no-such-flag"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"(see {command} --help)" in err and ".py" not in err.split("(see")[1]
    monkeypatch.setattr(sys, "argv", ["train_linear.py"])  # run as a script, or from Python: the file's name
    assert module.build_parser().prog.endswith(".py")


def test_runs_takes_the_store_before_or_after_its_subcommand(tmp_path, capsys):
    parser = runs.build_parser()
    assert parser.parse_args(["list"]).checkpoint == Path("checkpoints")
    assert parser.parse_args(["-c", "a", "list"]).checkpoint == Path("a")
    assert parser.parse_args(["list", "-c", "b"]).checkpoint == Path("b")
    assert parser.parse_args(["-c", "a", "clean", "-c", "b"]).checkpoint == Path("b")  # the later one wins
    (tmp_path / "ck").mkdir()
    assert runs.main(["-c", str(tmp_path / "ck"), "list"]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'ck'}: no runs"
