"""The README's Reliability table: run the whole fault suite (both tiers) and count its cases by kind.

    python3 -m scripts.reliability            # prints the Markdown table

Each case of ``tests/test_faults_*.py`` that runs through ``tests/fault_harness.run_case`` logs what
happened (exit status, stderr, every file added, changed or removed anywhere the command could
write); the subprocess cases (signals while modules load, SIGTERM while training) are counted from
pytest's own results, since each asserts the same contract. The table counts, per kind: the cases,
those that ended in the promised one line, tracebacks, partial or leftover files, results rows
changed, and earlier data lost. Security cases (``kind="security"``, each naming its threat) get a
section of their own: refused in one line or completed safely, and whether a victim folder outside
what the command was given changed. A failing case is counted as it happened, not hidden.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

from tests.fault_harness import FAULT_LOG, KINDS, THREATS
from utils.cli import Parser
from utils.progress import Steps

REPO = Path(__file__).resolve().parents[1]


def run_suite(log: Path, junit: Path) -> int:
    """Run the fault suite; one progress line per test file as it finishes (pytest -v names each case)."""
    env = {**os.environ, FAULT_LOG: str(log)}
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_faults_*.py"))
    # one test at a time (-n 0): the cases' subprocesses time themselves, and -v's lines come file by file
    command = [sys.executable, "-m", "pytest", "-v", "-n", "0", "-p", "no:cacheprovider", "-m", "slow or not slow"]
    command += [f"--junitxml={junit}", *files]
    with Steps(len(files), "fault test files") as steps:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        current, cases = None, 0
        for raw in process.stdout:
            name = raw.decode("utf-8", "replace").split("::", 1)[0].strip()
            if name not in files:
                continue
            if name != current and current is not None:
                steps.done(f"{current}: {cases} cases")
                cases = 0
            current, cases = name, cases + 1
        if current is not None:
            steps.done(f"{current}: {cases} cases")
        return process.wait()


def subprocess_cases(junit: Path) -> list[dict]:
    """Signal cases run as subprocesses: counted from pytest's results (each asserts the whole contract)."""
    cases = []
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("name", "")
        if "signal" not in name and "sigterm" not in name.lower():
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        if case.find("skipped") is not None:
            continue
        script = next(
            (word[:-3] for word in name.replace("[", "-").replace("]", "-").split("-") if word.endswith(".py")),
            case.get("classname", "").rsplit(".", 1)[-1].replace("test_faults_", ""),
        )
        cases.append(
            {
                "script": script,
                "kind": "signal",
                "one_line": not failed,
                "traceback": failed,
                "partial_files": [],
                "rows_changed": [],
                "lost": [],
            }
        )
    return cases


def lock_cases(junit: Path) -> list[dict]:
    """Forged and stale lock cases (tests/test_faults_security_store.py): in-process and subprocess tests that
    each assert the whole contract (the lock is judged stale or live as it must be, the command finishes,
    nothing hangs), counted from pytest's results as the signal cases are."""
    cases = []
    for case in ElementTree.parse(junit).iter("testcase"):
        if "security" not in case.get("classname", "") or "lock" not in case.get("name", "").lower():
            continue
        if "symlink" in case.get("name", ""):  # .locks as a symlink: a symlink case, logged by run_case
            continue
        if case.find("skipped") is not None:
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        cases.append(
            {
                "script": "training.locks",
                "kind": "security",
                "threat": "locks",
                "status": 1 if failed else 0,
                "one_line": not failed,
                "traceback": failed,
                "victim_touched": False,
                "partial_files": [],
                "rows_changed": [],
                "lost": [],
            }
        )
    return cases


def table(records: list[dict]) -> str:
    rows = [
        "| kind | cases | one line (after any progress lines) | tracebacks | partial files | wrong rows recorded "
        "| data lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = Counter()
    for kind, words in KINDS.items():
        if kind == "security":
            continue  # its own section below
        mine = [r for r in records if r["kind"] == kind]
        counts = Counter(
            cases=len(mine),
            one_line=sum(r["one_line"] for r in mine),
            traceback=sum(r["traceback"] for r in mine),
            partial=sum(bool(r["partial_files"]) for r in mine),
            rows=sum(bool(r["rows_changed"]) for r in mine),
            lost=sum(bool(r["lost"]) for r in mine),
        )
        totals.update(counts)
        rows.append(
            f"| {words} | {counts['cases']} | {counts['one_line']} | {counts['traceback']} | "
            f"{counts['partial']} | {counts['rows']} | {counts['lost']} |"
        )
    rows.append(
        f"| **all** | **{totals['cases']}** | **{totals['one_line']}** | **{totals['traceback']}** | "
        f"**{totals['partial']}** | **{totals['rows']}** | **{totals['lost']}** |"
    )
    rows += ["", security_table([r for r in records if r["kind"] == "security"])]
    scripts = Counter(r["script"] for r in records)
    rows.append("")
    rows.append("Cases per script: " + ", ".join(f"{name} {count}" for name, count in sorted(scripts.items())) + ".")
    return "\n".join(rows)


def security_table(records: list[dict]) -> str:
    """The security section: per threat, the cases refused in one line, those that completed with the
    hostile data handled (exit 0: e.g. a name exported escaped), tracebacks, and any case that touched
    the victim folder (a folder outside what the command was given, checked byte for byte)."""
    rows = [
        "| security: threat | cases | refused in one line | completed safely | tracebacks | victim folder touched "
        "| partial files |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = Counter()
    for threat, words in (*THREATS.items(), ("", "other")):
        mine = [r for r in records if r.get("threat", "") == threat]
        if not mine and not threat:
            continue
        counts = Counter(
            cases=len(mine),
            refused=sum(r["status"] != 0 and r["one_line"] for r in mine),
            completed=sum(r["status"] == 0 and not r["traceback"] for r in mine),
            traceback=sum(r["traceback"] for r in mine),
            victim=sum(bool(r.get("victim_touched")) for r in mine),
            partial=sum(bool(r["partial_files"]) and r["status"] != 0 for r in mine),
        )
        totals.update(counts)
        rows.append(
            f"| {words} | {counts['cases']} | {counts['refused']} | {counts['completed']} | {counts['traceback']} "
            f"| {counts['victim']} | {counts['partial']} |"
        )
    rows.append(
        f"| **all** | **{totals['cases']}** | **{totals['refused']}** | **{totals['completed']}** | "
        f"**{totals['traceback']}** | **{totals['victim']}** | **{totals['partial']}** |"
    )
    return "\n".join(rows)


def build_parser() -> Parser:
    return Parser(prog="python3 -m scripts.reliability", description=__doc__.split("\n\n")[0])


def main(argv=None) -> int:
    build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        log, junit = Path(folder) / "faults.jsonl", Path(folder) / "junit.xml"
        status = run_suite(log, junit)
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        records += subprocess_cases(junit) + lock_cases(junit)
    print(table(records))
    if status:
        print(f"\nthe fault suite itself failed (pytest exit status {status}): rerun it to see which case")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
