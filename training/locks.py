"""Lock files that work on one machine and on a shared filesystem (NFS, Lustre): no flock.

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on NFSv3+ and Lustre) holding its
owner's host, pid and a token. While held, a background thread touches it every
``HEARTBEAT_S`` seconds. A lock is stale — and is broken by the next process that wants it —
when its holder is dead: on this host, its pid no longer runs; on another host, its heartbeat is
older than ``STALE_AFTER_S``. Breaking renames the file to a unique name first, so two
processes cannot both break and both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from utils.errors import naming
from utils.testhooks import wrote

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            os.utime(self.path)


def read_owner(path: Path) -> dict:
    """The lock file's content ({} when it is unreadable or half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def is_stale(path: Path, now: float | None = None) -> bool:
    """True if the holder of the lock at ``path`` is dead (see the module docstring)."""
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    owner = read_owner(path)
    if owner.get("host") == HOST and isinstance(owner.get("pid"), int):
        return not _alive(owner["pid"]) or (
            owner["pid"] == os.getpid() and owner.get("token") not in _HEARTBEAT.tokens()
        )
    return age > STALE_AFTER_S


def try_lock(path: Path) -> Lock | None:
    """Take the lock at ``path`` without waiting (breaking it if stale); None when someone alive holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        token = f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _break_if_stale(path):
                return None
            continue
        try:
            with naming(path), os.fdopen(handle, "w") as stream:
                json.dump({"host": HOST, "pid": os.getpid(), "token": token, "since": time.time()}, stream)
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
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # someone else broke it first
    if read_owner(aside).get("token") != owner.get("token"):
        with contextlib.suppress(OSError):  # we moved a fresh lock by mistake: put it back
            os.link(aside, path)
    with contextlib.suppress(FileNotFoundError):
        aside.unlink()
    return True


@contextlib.contextmanager
def locked(path: Path, poll_s: float = 0.05) -> Iterator[Lock]:
    """Hold the lock at ``path`` for the block, waiting for it if needed."""
    while True:
        lock = try_lock(path)
        if lock is not None:
            break
        time.sleep(poll_s)
    try:
        yield lock
    finally:
        lock.release()


class _Heartbeat:
    """Touches every lock this process holds, every HEARTBEAT_S seconds, from one daemon thread."""

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
            time.sleep(HEARTBEAT_S)
            with self._guard:
                held = list(self._locks.values())
            for lock in held:
                lock.touch()


_HEARTBEAT = _Heartbeat()
