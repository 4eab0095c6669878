"""Progress for long commands: a tqdm bar on a terminal, lines with the elapsed time otherwise (logs of
batch jobs, pipes, ``nohup``), so that no long run is silent.

    with labelled("digits"), Steps(total=6, what="stages") as steps:
        for stage in stages:
            ...
            steps.done(f"{stage.label}: 9 heads trained")

prints, when stderr is not a terminal, ``[  12.3 s] digits: 1/6 stages: teacher: 9 heads trained``,
and while one step takes long, a line every :data:`HEARTBEAT_S` seconds saying what is still being
worked on (``[  17.3 s] digits: 1/6 stages, working on the next (the last done: teacher: …)``), so a
log never goes quiet for more than 10 s of work. :func:`labelled` names the job and dataset in every
line printed inside it (a sweep worker's job, each dataset of a multi-dataset command).
Lines go to stderr, beside tqdm's bars, so that stdout keeps only results.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")
# Between two lines of a long step; half the 10 s promise, so that a busy machine's delays stay inside it.
HEARTBEAT_S = 5.0
_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("progress_label", default="")
_PRINTING = threading.Lock()  # a heartbeat and the main thread never interleave half lines


def interactive(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """Name ``label`` (a job, a dataset) in every progress line printed inside the block; nested labels
    add to the outer one unless it already says them."""
    outer = _LABEL.get()
    inner = outer if label in outer else f"{outer} · {label}" if outer else label
    token = _LABEL.set(inner)
    try:
        yield
    finally:
        _LABEL.reset(token)


def current_label() -> str:
    return _LABEL.get()


def line(message: str, stream: TextIO | None = None, elapsed: float | None = None) -> None:
    """One progress line on stderr, with the current label (and ``elapsed`` seconds, if given), flushed."""
    label = _LABEL.get()
    text = (f"[{elapsed:8.1f} s] " if elapsed is not None else "") + (f"{label}: " if label else "") + message
    with _PRINTING:
        print(text, file=stream or sys.stderr, flush=True)


class Steps:
    """Count ``total`` steps (None when unknown); :meth:`done` marks one finished.

    Off a terminal a daemon thread prints a line whenever :data:`HEARTBEAT_S` seconds pass without one,
    so that a step of minutes (an Adam solve, a simulation) is not silent."""

    def __init__(
        self,
        total: int | None,
        what: str,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        heartbeat: float = HEARTBEAT_S,
    ):
        self.total, self.what, self.count = total, what, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.enabled = enabled
        self.last_message = ""
        self.bar = None
        self._label = _LABEL.get()  # the heartbeat thread has its own context: keep the caller's label
        self._printed = self.start
        self._stop = threading.Event()
        self._thread = None
        if enabled and interactive(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit="step", leave=False, file=self.stream)
        elif enabled and heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
            self._thread.start()

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _counted(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.count}{of} {self.what}"

    def _print(self, text: str) -> None:
        token = _LABEL.set(self._label)
        try:
            line(text, self.stream, self.elapsed)
        finally:
            _LABEL.reset(token)
        self._printed = time.perf_counter()

    def done(self, message: str = "") -> None:
        self.count += 1
        self.last_message = message
        if self.bar is not None:
            self.bar.set_postfix_str(message[:60], refresh=False)
            self.bar.update()
        elif self.enabled:
            self._print(self._counted() + (f": {message}" if message else ""))

    def _beat(self, every: float) -> None:
        while not self._stop.wait(min(every, max(0.05, every - (time.perf_counter() - self._printed)))):
            if time.perf_counter() - self._printed >= every:
                last = f" (the last done: {self.last_message})" if self.last_message else ""
                self._print(f"{self._counted()}, working on the next{last}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def track(items: Iterable[T], what: str, total: int | None = None, describe=str) -> Iterator[T]:
    """Iterate ``items``, marking each one done after the loop body has run."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Steps(total, what) as steps:
        for item in items:
            yield item
            steps.done(describe(item))
