"""Every command README.md, recipe.MD and docs/*.md show: it parses with the flags its script has
(default tier), and every one that can run offline runs as written, in document order, with the output
the document shows beside it (slow tier).

Commands are discovered from the documents' shell blocks at test time, so a command added to a
document is covered without editing this file. What cannot run here is skipped by the rules in
:data:`SKIPS`, each with its reason (a network download, a GPU, a cluster, a user's own file); a rule
that no longer matches any command fails, so the list cannot go stale. Commands that take minutes on
two cores, and documents built on such a command (:data:`LONG`, :data:`LONG_DOCUMENTS`), run in the
``long`` tier, which neither default nor slow selects: ``python3 -m pytest -q -m long -n 0``.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", REPO / "recipe.MD", *sorted((REPO / "docs").glob("*.md"))]
# Values for the shell variables of recipe.MD's grid function.
LOOP_VALUES = {"$d": "cifar100", "$ctype": "cc", "$lr": "0.05", "$wd": "5e-5"}
COMMAND = re.compile(r"^python3?\s+(?:-m\s+([\w.]+)|([\w./-]+)\.py)(.*)$")
TOOLS = {"pip", "pytest"}  # commands of other programs, documented for installing and testing
# Image datasets are downloaded from the network (and their features extracted for hours on a CPU).
NETWORK_DATASETS = {"cifar10", "cifar100", "caltech101", "caltech256", "flowers102", "food101", "stanfordcars"}


@dataclass(frozen=True)
class Command:
    document: str
    index: int  # position in the document
    line: str  # as written, after the shell variables were filled in
    script: str  # module name
    argv: tuple[str, ...]
    output: str | None  # the output block the document shows after it, if any

    @property
    def id(self) -> str:
        return f"{self.document}:{self.index}:{self.script}"


# (pattern matched against "script argv…", reason). Each must match at least one documented command.
SKIPS = [
    (r"^sweep .*--launcher (ray|slurm)(?!.*--print-sbatch)", "needs a Ray or SLURM cluster"),
    (r"^sweep \S*paper\.toml(?!.*(--dry-run|--print-sbatch))", "the paper's grid: downloads six datasets, GPU-days"),
    (r"--features cifar100-dinov2-vits14\.npz", "a features file the user writes with their own backbone"),
    (r"-c /shared/", "a shared cluster store that exists only on the user's cluster"),
    (r"^benchmarks\.bench_extract", "times image feature extraction on CUDA against a downloaded dataset"),
]
# Offline, but minutes of work on two cores; they run in the long tier (reason: measured cost).
LONG = [
    (r"^scripts\.reliability", "runs the whole fault suite"),
    (r"^benchmarks\.", "benchmarks time repeated runs (24 s to several minutes each)"),
    (r"^scripts\.validate_gmm", "simulations at several N and trials: minutes"),
    (r"^numerical_solving --method adam", "the reference's Adam solver: minutes per round"),
    (r"^gmm_distill (tune|simulate) .*--N 1000", "simulations at N = 1000: one to several minutes"),
    (r"^gmm_distill real .*--trials 20", "20 trials of tuned fits on digits"),
    (r"^train_linear .*--baselines all", "every baseline on two datasets × 5 η × 3 seeds"),
    (r"^sweep \S*embedded\.toml --parallel", "the embedded sweep with its figures"),
    (r"^numerical_solving --corruption .* --plots", "a grid of 10 solver settings with figures"),
    (r"^train_linear -d digits --wd 0\.01 --seed 2", "the reference replay's chain: 200 epochs × 5 stages"),
    (r"^scripts\.reference_replay", "replays the authors' loop over 200 epochs (needs the chain above)"),
]
# Whole documents whose commands build on a long first one: recipe.MD trains 360 runs before its reports.
LONG_DOCUMENTS = {"recipe.MD": "its embedded recipe trains 360 runs (2 datasets × 5 η × 3 seeds × 6 stages) first"}


def shell_blocks(text: str) -> list[tuple[str, str | None]]:
    """In document order: (shell block, the plain block shown right after it as its output, if the
    text between is prose), and each transcript (a plain block of ``$ command`` lines, each followed by
    its output) as one (``$ command`` lines joined, None) entry per command with its output."""
    found = []
    blocks = list(re.finditer(r"```(\w*)\n(.*?)```", text, flags=re.S))
    for i, match in enumerate(blocks):
        language, body = match.group(1), match.group(2)
        if language in ("bash", "sh"):
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            between = text[match.end() : following.start()] if following else ""
            shown = None
            if following and not following.group(1) and len(between) < 1200 and not transcript(following.group(2)):
                shown = following.group(2)
            found.append((body, shown))
        elif not language and transcript(body):
            for command, output in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n?)*)", body, flags=re.M):
                found.append((command + "\n", output))
    return found


def transcript(block: str) -> bool:
    return any(line.startswith("$ ") for line in block.splitlines())


def commands(path: Path) -> list[Command]:
    """Every ``python3 SCRIPT.py …`` / ``python3 -m MODULE …`` of the file's shell blocks and transcripts,
    also those chained with ``&&`` or ``;`` (a script path becomes its module name)."""
    found: list[Command] = []
    for block, output in shell_blocks(path.read_text()):
        block = block.replace("\\\n", " ")
        variables = dict(re.findall(r'^(\w+)="([^"]*)"', block, flags=re.M))
        in_block = []
        for line in block.splitlines():
            for part in re.split(r"&&|;", line.split(" #")[0]):
                part = part.strip().removeprefix("(").strip()
                if part.startswith("cd "):
                    continue
                match = COMMAND.match(part)
                if not match:
                    continue
                module = match.group(1) or match.group(2).replace("/", ".").lstrip(".")
                if module.split(".")[0] in TOOLS:
                    continue
                rest = match.group(3).split("|")[0].rstrip(") ")
                for name, value in LOOP_VALUES.items():
                    rest = rest.replace(f'"{name}"', value)
                rest = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), rest)
                argv = tuple(shlex.split(rest))
                in_block.append((module, argv, f"{module} {shlex.join(argv)}".strip()))
        for i, (module, argv, line) in enumerate(in_block):
            shown = output if i == len(in_block) - 1 else None  # output shown after a block: its last command's
            found.append(Command(path.name, len(found), line, module, argv, shown))
    return found


ALL = [command for path in DOCUMENTS for command in commands(path)]


def reason_to_skip(command: Command) -> str | None:
    for pattern, reason in SKIPS:
        if re.search(pattern, command.line):
            return reason
    datasets = set(command.argv) & NETWORK_DATASETS
    if datasets or any(token.startswith(tuple(f"{d}=" for d in NETWORK_DATASETS)) for token in command.argv):
        return f"downloads {', '.join(sorted(datasets)) or 'image datasets'} from the network"
    return None


def long_reason(command: Command) -> str | None:
    return next((reason for pattern, reason in LONG if re.search(pattern, command.line)), None)


def test_documents_show_commands():
    scripts = {command.script for command in ALL}
    assert {
        "train_linear",
        "report",
        "feature_correlation_map",
        "plot_softmax_simplex",
        "numerical_solving",
        "gmm_distill",
        "runs",
        "sweep",
        "benchmarks.bench_engine",
        "scripts.reliability",
        "scripts.reference_replay",
    } <= scripts


def test_the_pattern_catches_every_form():
    block = (
        "```bash\npython train_linear.py --epochs 2\npython3 -m benchmarks.bench_engine --repeats 1\n"
        "cd x && python3 report.py -c ck\npython3 -m pip install x && python3 runs.py list\n```\n\nIt prints\n\n"
        "```\nx: no runs\n```\n\n"
        "```\n$ python3 runs.py list -c a\na: no runs\n\n$ python3 runs.py list -c b\nb: 1 complete\n```\n"
    )
    found = commands_of(block)
    assert [c.script for c in found] == ["train_linear", "benchmarks.bench_engine", "report", "runs", "runs", "runs"]
    assert [c.output for c in found] == [None, None, None, "x: no runs\n", "a: no runs\n\n", "b: 1 complete\n"]
    assert found[-1].argv == ("list", "-c", "b")


def commands_of(text: str) -> list[Command]:
    path = Path(REPO / ".pytest-block.md")
    try:
        path.write_text(text)
        return commands(path)
    finally:
        path.unlink()


def test_every_skip_rule_is_used_and_every_command_is_classified():
    for pattern, reason in SKIPS + LONG:
        assert any(re.search(pattern, command.line) for command in ALL), f"no documented command is {reason!r}"
    runnable = [command for command in ALL if reason_to_skip(command) is None]
    assert len(runnable) >= 30, "most documented commands run offline"
    for command in runnable:
        assert not set(command.argv) & NETWORK_DATASETS


@pytest.mark.parametrize("command", ALL, ids=[command.id for command in ALL])
def test_documented_command_parses(command):
    if not (REPO / f"{command.script.replace('.', '/')}.py").is_file():
        pytest.fail(f"{command.document} runs {command.script}, which does not exist")
    module = importlib.import_module(command.script)
    assert hasattr(module, "build_parser"), f"{command.script} has no build_parser(): its flags cannot be checked"
    unresolved = [token for token in command.argv if token.startswith("$")]
    assert not unresolved, f"unresolved shell variables {unresolved} in {command.document}"
    module.build_parser().parse_args(list(command.argv))


# -- running them ---------------------------------------------------------------------------------------


def shown_lines(output: str) -> list[re.Pattern]:
    """The lines a document shows as output, as patterns: "…" stands for any text, elapsed times for any."""
    patterns = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("$ "):  # a transcript's command lines are not output
            continue
        text = re.escape(line).replace("…", ".*")
        text = re.sub(r"\\\[\\ *[\d.]+\\ s\\\]", r"\\[\\s*[\\d.]+ s\\]", text)
        patterns.append(re.compile(text))
    return patterns


def missing_lines(output: str, printed: str, folder: Path) -> list[str]:
    """Shown lines that neither appear in what the command printed nor name a file it wrote."""
    lines = [line.strip() for line in printed.splitlines()]
    missing = []
    for pattern in shown_lines(output):
        if any(pattern.fullmatch(line) or pattern.search(line) for line in lines):
            continue
        if (folder / pattern.pattern.replace("\\", "")).exists():
            continue
        missing.append(pattern.pattern)
    return missing


def run_documented(command: Command, folder: Path) -> subprocess.CompletedProcess:
    if "." in command.script:
        argv = [sys.executable, "-m", command.script, *command.argv]
    else:
        argv = [sys.executable, str(REPO / f"{command.script}.py"), *command.argv]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        argv, cwd=folder, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800
    )


DOCUMENT_NAMES = sorted({command.document for command in ALL})


def runnable(document: str, long_too: bool) -> list[Command]:
    """The commands of ``document`` that run here, in order (the long ones only with ``long_too``)."""
    if document in LONG_DOCUMENTS and not long_too:
        return []
    return [c for c in ALL if c.document == document and not reason_to_skip(c) and (long_too or not long_reason(c))]


def run_in_order(commands: list[Command], folder: Path) -> None:
    """Run ``commands`` in one folder (a later command reads what an earlier one wrote, as for a reader
    following the page); every one must succeed and print the lines its document shows."""
    failures = []
    for command in commands:
        start = time.perf_counter()
        result = run_documented(command, folder)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            failures.append(f"{command.line}: exit {result.returncode} after {seconds:.0f} s: {result.stderr[-400:]}")
        elif command.output is not None and not command.script.startswith("benchmarks."):  # timings vary
            missing = missing_lines(command.output, result.stdout + result.stderr, folder)
            if missing:
                failures.append(f"{command.line}: the document shows lines it did not print: {missing[:5]}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("document", [d for d in DOCUMENT_NAMES if runnable(d, long_too=False)])
def test_documented_commands_run_offline_as_written(document, tmp_path):
    """Each document's runnable commands that take seconds, in document order, in one fresh folder."""
    run_in_order(runnable(document, long_too=False), tmp_path)


@pytest.mark.long
@pytest.mark.parametrize("document", [d for d in DOCUMENT_NAMES if runnable(d, long_too=True)])
def test_documented_commands_run_offline_as_written_long_ones_too(document, tmp_path):
    """The same with the commands that take minutes (recipe.MD's whole embedded recipe among them)."""
    run_in_order(runnable(document, long_too=True), tmp_path)
