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


COMMAND = re.compile(r"(?:^|[\s;&(])python3?\s+(?:-m\s+([\w.]+)|([\w./-]+)\.py)(.*)")
TOOLS = {"pip", "pytest"}  # commands of other programs, documented for installing and testing


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """(module, argv) for every ``python3 SCRIPT.py …``, ``python SCRIPT.py …`` and ``python3 -m MODULE …``
    line in the file's shell blocks (a script path becomes its module name)."""
    found = []
    for block in shell_blocks(path.read_text()):
        block = block.replace("\\\n", " ")
        variables = dict(re.findall(r'^(\w+)="([^"]*)"', block, flags=re.M))
        for line in block.splitlines():
            match = COMMAND.search(line)
            if not match:
                continue
            module = match.group(1) or match.group(2).replace("/", ".").lstrip(".")
            if module in TOOLS:
                continue
            rest = match.group(3).split(" #")[0].split("|")[0]
            for name, value in LOOP_VALUES.items():
                rest = rest.replace(f'"{name}"', value)
            rest = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), rest)
            found.append((module, shlex.split(rest)))
    return found


ALL = [(path.name, script, argv) for path in DOCUMENTS for script, argv in commands(path)]


def test_documents_show_commands():
    scripts = {script for _, script, _ in ALL}
    assert {
        "train_linear",
        "report",
        "feature_correlation_map",
        "plot_softmax_simplex",
        "numerical_solving",
        "gmm_distill",
        "runs",
        "benchmarks.bench_engine",
        "scripts.reliability",
    } <= scripts


def test_the_pattern_catches_every_form():
    block = (
        "```bash\npython train_linear.py --epochs 2\npython3 -m benchmarks.bench_engine --repeats 1\n"
        "cd x && python3 report.py -c ck\npython3 -m pip install x\n```"
    )
    assert [script for script, _ in commands_of(block)] == ["train_linear", "benchmarks.bench_engine", "report"]


def commands_of(text: str) -> list[tuple[str, list[str]]]:
    path = Path(REPO / ".pytest-block.md")
    try:
        path.write_text(text)
        return commands(path)
    finally:
        path.unlink()


@pytest.mark.parametrize("document, script, argv", ALL, ids=[f"{d}:{s}:{i}" for i, (d, s, _) in enumerate(ALL)])
def test_documented_command_parses(document, script, argv):
    if not (REPO / f"{script.replace('.', '/')}.py").is_file():
        pytest.fail(f"{document} runs {script}, which does not exist")
    module = importlib.import_module(script)
    assert hasattr(module, "build_parser"), f"{script} has no build_parser(): its flags cannot be checked"
    unresolved = [token for token in argv if token.startswith("$")]
    assert not unresolved, f"unresolved shell variables {unresolved} in {document}"
    module.build_parser().parse_args(argv)
