"""Hooks that make kill points and interleavings deterministic in tests; inert unless their variables are set.

- ``SELFDISTILL_KILL_AFTER_WRITES=N``: the process SIGKILLs itself right after its N-th write to a
  run store or results CSV (every write calls :func:`wrote`), so a test can stop it at every point.
- ``SELFDISTILL_KILL_AFTER_PUBLISHES=N``: the same, right after its N-th published run (a worker of a
  sweep killed by a scheduler part-way through its chain).
- ``SELFDISTILL_PAUSE=STEP:FOLDER``: the first time it reaches the named step (:func:`step`), the process writes
  ``FOLDER/STEP.<pid>.paused`` and waits until that file is removed, so a test can hold one
  writer at a chosen point while another runs.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

KILL_AFTER_WRITES = "SELFDISTILL_KILL_AFTER_WRITES"
KILL_AFTER_PUBLISHES = "SELFDISTILL_KILL_AFTER_PUBLISHES"
PAUSE = "SELFDISTILL_PAUSE"
_writes = 0
_publishes = 0
_paused: set[str] = set()


def wrote(what: str = "") -> None:
    """Count one completed write; the N-th kills the process when the test hook asks for it."""
    global _writes, _publishes
    _writes += 1
    _publishes += what == "publish"
    limit = os.environ.get(KILL_AFTER_WRITES)
    published = os.environ.get(KILL_AFTER_PUBLISHES)
    if (limit and _writes == int(limit)) or (published and what == "publish" and _publishes == int(published)):
        os.kill(os.getpid(), signal.SIGKILL)


def step(name: str) -> None:
    """Pause here if the test hook names this step."""
    spec = os.environ.get(PAUSE)
    if not spec:
        return
    wanted, _, folder = spec.partition(":")
    if wanted != name or name in _paused:
        return
    _paused.add(name)
    marker = Path(folder) / f"{name}.{os.getpid()}.paused"
    marker.write_text(str(os.getpid()))
    while marker.exists():
        time.sleep(0.02)
