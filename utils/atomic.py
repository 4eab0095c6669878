"""Atomic file writes (temp file in the same folder + ``os.replace``), alone or as a group, and a file lock.

A reader never sees a half-written file: either the old content or the new one. An interrupted
write leaves no partial file behind. :func:`atomic_group` writes several files (a figure's PNG and
PDF, a report's tables) so that they appear together or not at all. An output path must be a
regular file or absent (:func:`refuse_special`): a rename would turn a device node, a FIFO or a
socket into a regular file (as root, ``--csv /dev/null`` would replace the system's). Temporary
files carry this host's name and the writer's pid, so a process killed mid-write (SIGKILL) leaves
nothing that the next write of the same file does not remove (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from utils.errors import UserError, naming, signals_deferred

SPECIAL_KINDS = (
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
)


def refuse_special(path: str | os.PathLike, flag: str = "") -> None:
    """One line if ``path`` (followed through links) is a device, FIFO or socket: outputs are regular files or absent.

    Checked without opening the file (opening a FIFO blocks until someone writes to it).
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # absent, or a problem the write itself will name
        return
    kind = next((name for test, name in SPECIAL_KINDS if test(mode)), None)
    if kind is not None:
        prefix = f"{flag} " if flag else ""
        raise UserError(f"{prefix}{os.fspath(path)} is a {kind}, not a regular file; give the path of a file")


HOST = socket.gethostname().replace(".", "_").replace("/", "_")  # one name per machine, safe inside a file name


def _temp_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    prefix = f".{target.name}.{HOST}-{os.getpid()}."
    handle, temp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    return temp


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of earlier writes of ``target`` whose process is gone (killed by SIGKILL, a
    power cut); returns them. Only our own names (``.<name>.<this host>-<pid>.<random>.tmp``, the pid not
    running), only regular files by ``lstat``: a link, a folder or another process's file is left alone."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{re.escape(HOST)}-(\d+)\.[^./]+\.tmp")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or _running(int(found.group(1))) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):  # no process has such a pid
        return False
    return True


def _fsync(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    with atomic_group([path]) as (temp,):
        yield temp


@contextlib.contextmanager
def atomic_group(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of ``paths``; on success all are renamed onto their targets.

    The renames run with SIGINT and SIGTERM held, so an interrupt lands before or after all of them;
    on any failure before that point every temporary file is removed and no target changes.
    """
    targets = [Path(path) for path in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            refuse_special(target)
            if target.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(target))
            temps.append(_temp_beside(target))
        with naming(targets[0] if len(targets) == 1 else targets[0].parent):
            yield list(temps)
            for temp in temps:
                _fsync(temp)
        with signals_deferred():
            for temp, target in zip(temps, targets):
                os.replace(temp, target)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through a temp file, so a crash never leaves a truncated checkpoint."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def savez(path: str | os.PathLike, **arrays: Any) -> None:
    """``numpy.savez_compressed`` through a temp file."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path + '.lock'`` (works across processes on one machine)."""
    lock_path = Path(f"{os.fspath(path)}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
