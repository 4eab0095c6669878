"""Lock files that work on one machine and on a shared filesystem (NFS, Lustre): no flock.

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on NFSv3+ and Lustre) holding its
owner's host, pid, the process's start time (from ``/proc/<pid>/stat``) and a token. While held,
a background thread touches it every few seconds (its heartbeat). A lock is *stale* — and is
broken by the next process that wants it — when its holder is provably gone or silent:

- on this host, its pid does not run, or runs with another start time (the pid was reused);
- on any host, its heartbeat (modification time) is older than the stale limit by the reader's
  clock; a modification time more than the limit in the *future* (clock skew between hosts)
  counts as stale too, with a one-line note;
- it is damaged: its pid is not an integer in 2..2**31-1 (pid 0, -1 and 1 — init, always alive —
  never hold a lock; 2**70 is no pid), or its content is unreadable for longer than a writer
  needs to fill it.

Breaking renames the file to a unique name first, so two processes cannot both break and both
take it. The stale limit is ``STALE_AFTER_S`` seconds, or ``SELFDISTILL_LOCK_STALE_S`` from the
environment (tests and impatient clusters). Waiting for a lock says who holds it and since when,
and gives up with one line after ``WAIT_LIMITS`` stale limits of a lock that never goes stale.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from utils.errors import UsageError, UserError, naming
from utils.testhooks import wrote

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
STALE_ENV = "SELFDISTILL_LOCK_STALE_S"
WRITE_GRACE_S = 2.0  # a lock created a moment ago may not hold its owner yet
WAIT_LIMITS = 10
MAX_PID = 2**31 - 1
HOST = socket.gethostname()
_TOKEN_HOST = re.sub(r"[^A-Za-z0-9-]", "-", HOST)[:60]  # no dots: a run's folder is <name>.<token>
log = logging.getLogger(__name__)
_noted: set[str] = set()


def stale_after() -> float:
    """The stale limit in seconds: ``SELFDISTILL_LOCK_STALE_S`` if set, else ``STALE_AFTER_S``."""
    text = os.environ.get(STALE_ENV)
    if text is None:
        return STALE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{STALE_ENV} must be a positive number of seconds, got {text!r}; unset it for 60")
    return value


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            text = stream.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name (field 2) may hold spaces and parentheses
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def valid_pid(pid: object) -> bool:
    return type(pid) is int and 1 < pid <= MAX_PID


class Lock:
    """A held lock file; :meth:`release` removes it."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if read_owner(self.path).get("token") == self.token:
                self.path.unlink()
                wrote("unlock")
        _HEARTBEAT.forget(self)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # the lock folder goes when its last lock does

    def touch(self) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.path, follow_symlinks=False)


def read_owner(path: Path) -> dict:
    """The lock file's content ({} when it is unreadable, half-written, not a JSON object or a link)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        with os.fdopen(handle, "rb") as stream:
            owner = json.loads(stream.read(4096))
    except (OSError, ValueError, RecursionError):
        return {}
    return owner if isinstance(owner, dict) else {}


def why_stale(path: Path, now: float | None = None) -> str:
    """'' while the lock at ``path`` may have a live holder (or is absent), else why it is stale."""
    try:
        mtime = os.lstat(path).st_mtime
    except FileNotFoundError:
        return ""
    limit = stale_after()
    age = (time.time() if now is None else now) - mtime
    owner = read_owner(path)
    if not owner:
        return f"it is unreadable and {abs(age):.0f} s old" if abs(age) > WRITE_GRACE_S else ""
    pid, host = owner.get("pid"), owner.get("host")
    if not valid_pid(pid) or not isinstance(host, str):
        return f"it is damaged (host {str(host)[:40]!r}, pid {str(pid)[:40]})"
    if host == HOST:
        if not _alive(pid):
            return f"its holder, process {pid} on this host, is gone"
        started, now_started = owner.get("start"), start_time(pid)
        if started is not None and now_started is not None and started != now_started:
            return f"process {pid} on this host is another process than the one that took it"
        if pid == os.getpid() and owner.get("token") not in _HEARTBEAT.tokens():
            return "this process took it and no longer holds it"
    if age > limit:
        return f"its heartbeat stopped {age:.0f} s ago (stale after {limit:g} s)"
    if -age > limit:
        if str(path) not in _noted:
            _noted.add(str(path))
            log.warning(
                "lock %s was touched %.0f s in the future by this host's clock (clock skew?); treated as stale",
                path,
                -age,
            )
        return f"its modification time is {-age:.0f} s in the future"
    return ""


def is_stale(path: Path, now: float | None = None) -> bool:
    """True if the lock at ``path`` exists and its holder is gone (see the module docstring)."""
    return bool(why_stale(path, now))


def describe(path: Path) -> str:
    """Who holds the lock at ``path`` and since when, for messages."""
    owner = read_owner(path)
    since = owner.get("since")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if isinstance(since, (int, float)) and math.isfinite(since) and 0 <= since < 2**40
        else "an unknown time"
    )
    return f"process {str(owner.get('pid', '?'))[:40]} on {str(owner.get('host', '?'))[:60]} since {when}"


def try_lock(path: Path) -> Lock | None:
    """Take the lock at ``path`` without waiting (breaking it if stale); None when someone alive holds it."""
    for _ in range(3):
        token = f"{_TOKEN_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            if not _break_if_stale(path):
                return None
            continue
        except FileNotFoundError:
            continue  # the lock folder went with another process's last lock: make it again
        owner = {"host": HOST, "pid": os.getpid(), "start": start_time(os.getpid()), "token": token}
        try:
            with naming(path), os.fdopen(handle, "w") as stream:
                json.dump({**owner, "since": time.time()}, stream)
        except BaseException:
            path.unlink(missing_ok=True)  # a lock we could not fill (disk full, Ctrl-C) is not left behind
            raise
        wrote("lock")
        lock = Lock(path, token)
        _HEARTBEAT.add(lock)
        return lock
    return None


def _break_if_stale(path: Path) -> bool:
    owner = read_owner(path)
    if not is_stale(path):
        return False
    aside = path.with_name(f"{path.name}.broken-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)  # renames a planted symlink itself, never its target
    except FileNotFoundError:
        return True  # someone else broke it first
    if read_owner(aside).get("token") != owner.get("token"):
        with contextlib.suppress(OSError):  # we moved a fresh lock by mistake: put it back
            os.link(aside, path, follow_symlinks=False)
    with contextlib.suppress(OSError):
        aside.unlink()
    return True


@contextlib.contextmanager
def locked(path: Path, poll_s: float = 0.05, limit_s: float | None = None) -> Iterator[Lock]:
    """Hold the lock at ``path`` for the block, waiting for it if needed: a note says who holds it, and
    ``UserError`` ends a wait longer than ``limit_s`` (default ``WAIT_LIMITS`` stale limits)."""
    limit_s = WAIT_LIMITS * stale_after() if limit_s is None else limit_s
    started = time.monotonic()
    announced = False
    while True:
        lock = try_lock(path)
        if lock is not None:
            break
        if not announced:
            log.warning("waiting for %s, held by %s (stale %g s after it stops)", path, describe(path), stale_after())
            announced = True
        if time.monotonic() - started > limit_s:
            raise UserError(
                f"gave up after {limit_s:g} s waiting for {path}, held by {describe(path)}; "
                f"if that process is gone, delete {path}"
            )
        time.sleep(poll_s)
    try:
        yield lock
    finally:
        lock.release()


class _Heartbeat:
    """Touches every lock this process holds, well within the stale limit, from one daemon thread."""

    def __init__(self) -> None:
        self._locks: dict[str, Lock] = {}
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def tokens(self) -> set[str]:
        with self._guard:
            return set(self._locks)

    def add(self, lock: Lock) -> None:
        with self._guard:
            self._locks[lock.token] = lock
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lock-heartbeat", daemon=True)
                self._thread.start()

    def forget(self, lock: Lock) -> None:
        with self._guard:
            self._locks.pop(lock.token, None)

    def _run(self) -> None:
        while True:
            try:
                interval = min(HEARTBEAT_S, stale_after() / 4)
            except UsageError:
                interval = HEARTBEAT_S
            time.sleep(interval)
            with self._guard:
                held = list(self._locks.values())
            for lock in held:
                lock.touch()


_HEARTBEAT = _Heartbeat()
