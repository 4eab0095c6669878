"""The fault suite's harness: run a script's ``main`` on a bad input or under an injected fault and check
the error contract (utils/errors.py) — exit status, exactly one ``error:`` line naming the flag or
file, no traceback, and nothing left behind or changed anywhere the command could write.

Each test file ``tests/test_faults_<script>.py`` lists :class:`Case` objects and runs them with
:func:`check_case`. A case's sandbox is the test's ``tmp_path``: the working directory (so the
default ``./checkpoints``, ``./results`` and ``./reports`` live there) and, through
``tests/conftest.py``, the data root, the feature root and the torch hub folder. Everything under
it is snapshotted (path, size, SHA-256) before and after the command.

OS refusals are injected in-process (:func:`os_refusal`): CI runs as root, where permission bits do
not bite, so EACCES, EROFS and ENOSPC are raised by the write primitives themselves for paths under
a chosen folder. With ``SELFDISTILL_FAULT_LOG=FILE`` every outcome is appended to FILE as a JSON
line; ``python3 -m scripts.reliability`` runs the suite that way and tabulates it for the README.

Security cases (``kind="security"``, in ``tests/test_faults_security_*.py``) name the threat they
try (:data:`THREATS`) and plant a victim folder (:func:`plant_victim`) beside what the command is
given: the outcome lists anything under it that appeared, changed or disappeared. They are logged
whether the command refused the input or completed with it handled (a hostile name exported escaped).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import errno
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

KINDS = {
    "value": "values refused before any work",
    "file": "malformed input files",
    "state": "corrupt or missing state (runs, caches, CSVs)",
    "os": "the operating system says no (injected and real)",
    "collision": "output paths that collide with files or folders",
    "signal": "Ctrl-C and SIGTERM",
    "security": "security: data that tries to act beyond the folders it was given",
}
# What a security case tries (its Case.threat); scripts.reliability counts them in a section of their own.
THREATS = {
    "symlinks": "symlink planting",
    "names": "hostile names",
    "special": "special files (devices, FIFOs, sockets)",
    "locks": "forged or stale locks",
    "sweep": "sweep-file injection",
    "export": "export injection (CSV, LaTeX, Markdown, figures)",
    "outside": "runs and files outside the store",
    "exhaustion": "resource exhaustion (huge labels, values, nesting)",
}
VICTIM = "victim"  # a folder of the sandbox no command may touch: checked byte for byte
FAULT_LOG = "SELFDISTILL_FAULT_LOG"
PROGRESS_LINE = re.compile(r"\[ *\d+\.\d s\] ")


@dataclasses.dataclass
class Case:
    """One bad input or fault against one script."""

    script: str  # module name of the script, e.g. "train_linear"
    kind: str  # a key of KINDS
    argv: list[str]
    pattern: str  # regex the single error line must match (after "error: ")
    status: int = 1  # expected exit status
    setup: Callable[[Path], None] | None = None  # prepares the sandbox before the snapshot
    fault: Callable[[Path], contextlib.AbstractContextManager] | None = None  # wraps the command's run
    name: str = ""
    threat: str = ""  # for kind "security": a key of THREATS

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert (self.kind == "security") == bool(self.threat) and (not self.threat or self.threat in THREATS), (
            f"a security case names its threat (one of {', '.join(THREATS)}), and only a security case does"
        )

    @property
    def id(self) -> str:
        return self.name or " ".join(self.argv)[:60]


@dataclasses.dataclass
class Outcome:
    script: str
    kind: str
    case: str
    status: int
    stdout: str
    stderr: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    threat: str = ""

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr

    @property
    def one_line(self) -> bool:
        lines = self.stderr.splitlines()
        return len(lines) == 1 and (lines[0].startswith("error: ") or lines[0] in ("interrupted", "terminated"))

    @property
    def last_line_after_progress(self) -> bool:
        """A failure after work had started: progress lines (utils.progress), then the one final line."""
        *progress, last = self.stderr.splitlines() or [""]
        final = last.startswith("error: ") or last in ("interrupted", "terminated")
        return final and all(PROGRESS_LINE.match(line) for line in progress)

    def record(self) -> dict:
        return {
            "script": self.script,
            "kind": self.kind,
            "case": self.case,
            "status": self.status,
            "one_line": self.one_line or self.last_line_after_progress,
            "traceback": self.traceback,
            "partial_files": self.added,
            "changed": [p for p in self.changed if not p.endswith(".csv")],
            "rows_changed": [p for p in self.changed if p.endswith(".csv")],
            "lost": self.removed,
            "threat": self.threat,
            "victim_touched": self.victim_touched,
        }

    @property
    def victim_touched(self) -> list[str]:
        """Paths under the sandbox's ``victim/`` folder that appeared, changed or disappeared."""
        return [p for p in self.added + self.changed + self.removed if p == VICTIM or p.startswith(f"{VICTIM}/")]


def plant_victim(sandbox: Path) -> Path:
    """A folder of files that belong to nobody's run (a user's data): a security case must leave it byte for byte."""
    victim = sandbox / VICTIM
    (victim / "nested").mkdir(parents=True, exist_ok=True)
    (victim / "notes.txt").write_text("the user's own notes\n")
    (victim / "nested" / "data.csv").write_text("a,b\n1,2\n")
    return victim


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (hidden ones too) as relative path → (size, SHA-256); folders as (−1, '')."""
    state: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            state[relative] = (-2, os.readlink(path))
        elif path.is_dir():
            state[relative] = (-1, "")
        elif path.is_file():
            state[relative] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def run_case(case: Case, sandbox: Path, capsys: pytest.CaptureFixture) -> Outcome:
    """Prepare ``sandbox``, run the script's ``main`` in it, and report what happened."""
    if case.setup is not None:
        case.setup(sandbox)
    module = importlib.import_module(case.script)
    before = snapshot(sandbox)
    capsys.readouterr()
    previous = Path.cwd()
    os.chdir(sandbox)
    try:
        with case.fault(sandbox) if case.fault is not None else contextlib.nullcontext():
            try:
                status = module.main(case.argv)
            except SystemExit as exit:  # argparse exits from parse_args
                status = int(exit.code or 0)
    finally:
        os.chdir(previous)
    out, err = capsys.readouterr()
    after = snapshot(sandbox)
    outcome = Outcome(
        script=case.script,
        kind=case.kind,
        case=case.id,
        status=status,
        stdout=out,
        stderr=err,
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(p for p in set(before) & set(after) if before[p] != after[p]),
        threat=case.threat,
    )
    log = os.environ.get(FAULT_LOG)
    # A case that succeeded (the rerun a message suggests) is not a fault; a security case counts either way
    # (a hostile name exported safely succeeds).
    if log and (status != 0 or case.kind == "security"):
        with open(log, "a") as stream:
            stream.write(json.dumps(outcome.record()) + "\n")
    return outcome


SIGNAL_LINES = {130: "interrupted\n", 143: "terminated\n"}


def check_case(case: Case, sandbox: Path, capsys: pytest.CaptureFixture) -> Outcome:
    """Run ``case`` and assert the contract; returns the outcome for further checks.

    A case expecting 130 or 143 (Ctrl-C, SIGTERM) expects exactly ``interrupted`` / ``terminated``
    on stderr; any other case exactly one ``error:`` line matching its pattern.
    """
    outcome = run_case(case, sandbox, capsys)
    assert not outcome.traceback, outcome.stderr
    if case.status in SIGNAL_LINES:
        assert outcome.stderr == SIGNAL_LINES[case.status], outcome.stderr
    else:
        assert outcome.one_line, f"stderr is not one error line: {outcome.stderr!r}"
        assert re.search(case.pattern, outcome.stderr), f"{case.pattern!r} not in {outcome.stderr!r}"
    assert outcome.status == case.status, (outcome.status, outcome.stderr)
    assert not outcome.added, f"left behind: {outcome.added}"
    assert not outcome.changed, f"changed: {outcome.changed}"
    assert not outcome.removed, f"removed: {outcome.removed}"
    return outcome


# -- injected OS refusals ------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _under(path, root: Path) -> bool:
    try:
        resolved = Path(os.fsdecode(path)).absolute()
    except (TypeError, ValueError):
        return False
    return resolved == root or root in resolved.parents


@contextlib.contextmanager
def os_refusal(root: Path, code: int = errno.EROFS) -> Iterator[None]:
    """Every write, folder creation, rename or link under ``root`` fails with ``OSError(code)``.

    Patches the primitives every writer goes through (``os.open``, ``open``/``io.open`` in a
    writing mode, ``os.mkdir``, ``os.replace``/``os.rename``, ``os.link``/``os.symlink``, and the
    path-based removals ``os.unlink``/``os.remove``/``os.rmdir``), so the
    code under test sees what a read-only, full or forbidden folder would give it.
    """
    root = Path(root).absolute()
    real = {
        "os_open": os.open,
        "open": builtins.open,
        "io_open": io.open,
        "mkdir": os.mkdir,
        "replace": os.replace,
        "rename": os.rename,
        "link": os.link,
        "symlink": os.symlink,
        "unlink": os.unlink,
        "remove": os.remove,
        "rmdir": os.rmdir,
    }

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS and _under(path, root):
            refuse(path)
        return real["os_open"](path, flags, *args, **kwargs)

    def make_open(original):
        def patched(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and _under(file, root):
                refuse(file)
            return original(file, mode, *args, **kwargs)

        return patched

    def one_path(name):
        def patched(path, *args, **kwargs):
            if kwargs.get("dir_fd") is None and _under(path, root):
                refuse(path)
            return real[name](path, *args, **kwargs)

        return patched

    def two_paths(name):
        def patched(src, dst, *args, **kwargs):
            if _under(dst, root) or _under(src, root):
                refuse(dst)
            return real[name](src, dst, *args, **kwargs)

        return patched

    patches = {
        (os, "open"): os_open,
        (builtins, "open"): make_open(real["open"]),
        (io, "open"): make_open(real["io_open"]),
        (os, "mkdir"): one_path("mkdir"),
        (os, "unlink"): one_path("unlink"),
        (os, "remove"): one_path("remove"),
        (os, "rmdir"): one_path("rmdir"),
        (os, "replace"): two_paths("replace"),
        (os, "rename"): two_paths("rename"),
        (os, "link"): two_paths("link"),
        (os, "symlink"): two_paths("symlink"),
    }
    saved = {key: getattr(*key) for key in patches}
    try:
        for (module, name), function in patches.items():
            setattr(module, name, function)
        yield
    finally:
        for (module, name), function in saved.items():
            setattr(module, name, function)


def refusal(folder: str, code: int) -> Callable[[Path], contextlib.AbstractContextManager]:
    """A :attr:`Case.fault`: refuse writes under ``sandbox / folder`` with ``code``."""
    return lambda sandbox: os_refusal(sandbox / folder, code)


OS_CODES = {"EACCES": errno.EACCES, "EROFS": errno.EROFS, "ENOSPC": errno.ENOSPC}
OS_PATTERNS = {"EACCES": "permission denied", "EROFS": "read-only file system", "ENOSPC": "disk full"}


# -- real mounts ---------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(target: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``target`` with ``options`` (e.g. ``size=64k``, ``size=1m,ro``) for the block,
    unmounted and removed after; the test is skipped where mounting is not permitted."""
    target.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)
        shutil.rmtree(target, ignore_errors=True)
