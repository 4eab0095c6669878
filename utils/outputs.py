"""Check every output path before work starts, so that a path mistake costs a second, not a trained run.

A command lists the folders and files it will write (with the flag that names each) in an
:class:`OutputPlan`; the plan creates missing folders and writes and removes a probe file in each,
and turns any refusal into one line naming the flag, the path and the cause. If the command then
fails, :func:`planned_outputs` removes the folders the plan created (when they are still empty),
so a failed command leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from utils.atomic import refuse_special
from utils.errors import UserError, describe_os_error


class OutputPlan:
    def __init__(self) -> None:
        self.created: list[Path] = []

    def folder(self, path: str | os.PathLike, flag: str) -> Path:
        """A folder the command writes into: created if missing, probed for writing."""
        folder = Path(path).expanduser()
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{flag} {folder} is a file, not a folder; give a folder path")
        try:
            self._make(folder)
            handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            error.filename = str(folder)  # the folder, not the probe file inside it
            raise UserError(f"{flag}: " + describe_os_error(error, "cannot write to")) from None
        return folder

    def file(self, path: str | os.PathLike, flag: str) -> Path:
        """A file the command writes (atomically, beside itself): its folder is probed; a regular file or absent."""
        target = Path(path).expanduser()
        refuse_special(target, flag)
        if target.is_dir():
            raise UserError(f"{flag} {target} is a folder, not a file; give a file path")
        if target.exists() and not os.access(target, os.W_OK) and os.geteuid() != 0:
            raise UserError(
                f"{flag}: "
                + describe_os_error(PermissionError(errno.EACCES, "Permission denied", str(target)), "cannot write to")
            )
        parent = target.parent if str(target.parent) else Path(".")
        blocking = next((p for p in [parent, *parent.parents] if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise UserError(f"{flag} {target}: {blocking} is a file, not a folder; give a path inside a folder")
        self.folder(parent, flag)
        return target

    def _make(self, folder: Path) -> None:
        missing = []
        for parent in [folder, *folder.parents]:
            if parent.exists():
                break
            missing.append(parent)
        for parent in reversed(missing):
            parent.mkdir()
            self.created.append(parent)

    def discard(self) -> None:
        """Remove the folders this plan created, deepest first, where they are still empty."""
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.created.clear()


@contextlib.contextmanager
def planned_outputs() -> Iterator[OutputPlan]:
    """An :class:`OutputPlan` whose created folders are removed if the block fails (or is interrupted)."""
    plan = OutputPlan()
    try:
        yield plan
    except BaseException:
        plan.discard()
        raise
