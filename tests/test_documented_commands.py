"""Every command the README, recipe.MD and docs/ show parses with the flags its script really has."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", REPO / "recipe.MD", *sorted((REPO / "docs").glob("*.md"))]
# Values for the shell variables of recipe.MD's grid function.
LOOP_VALUES = {"$d": "cifar100", "$ctype": "cc", "$lr": "0.05", "$wd": "5e-5"}


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """(script, argv) for every ``python3 SCRIPT.py ...`` line in the file's shell blocks."""
    found = []
    for block in shell_blocks(path.read_text()):
        block = block.replace("\\\n", " ")
        variables = dict(re.findall(r'^(\w+)="([^"]*)"', block, flags=re.M))
        for line in block.splitlines():
            match = re.search(r"python3 (\w+)\.py(.*)", line)
            if not match or match.group(1) in {"pip"}:
                continue
            rest = match.group(2).split(" #")[0].split("|")[0]
            for name, value in LOOP_VALUES.items():
                rest = rest.replace(f'"{name}"', value)
            rest = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), rest)
            found.append((match.group(1), shlex.split(rest)))
    return found


ALL = [(path.name, script, argv) for path in DOCUMENTS for script, argv in commands(path)]


def test_documents_show_commands():
    scripts = {script for _, script, _ in ALL}
    assert {"train_linear", "report", "feature_correlation_map", "plot_softmax_simplex"} <= scripts


@pytest.mark.parametrize("document, script, argv", ALL, ids=[f"{d}:{s}:{i}" for i, (d, s, _) in enumerate(ALL)])
def test_documented_command_parses(document, script, argv):
    if not (REPO / f"{script}.py").is_file():
        pytest.fail(f"{document} runs {script}.py, which does not exist")
    module = importlib.import_module(script)
    unresolved = [token for token in argv if token.startswith("$")]
    assert not unresolved, f"unresolved shell variables {unresolved} in {document}"
    module.build_parser().parse_args(argv)
