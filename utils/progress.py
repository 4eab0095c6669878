"""Progress for long commands: a tqdm bar on a terminal, one line per finished step with the elapsed
time otherwise (logs of batch jobs, pipes), so that no long run is silent.

    with Steps(total=6, what="stages") as steps:
        for stage in stages:
            ...
            steps.done(f"{stage.label}: 9 heads trained")

prints, when stderr is not a terminal, ``[  12.3 s] 1/6 stages: teacher: 9 heads trained``.
Lines go to stderr, beside tqdm's bars, so that stdout keeps only results.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


def interactive(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Steps:
    """Count ``total`` steps (None when unknown); :meth:`done` marks one finished."""

    def __init__(self, total: int | None, what: str, *, stream: TextIO | None = None, enabled: bool = True):
        self.total, self.what, self.count = total, what, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.enabled = enabled
        self.bar = None
        if enabled and interactive(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit="step", leave=False, file=self.stream)

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def done(self, message: str = "") -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(message[:60], refresh=False)
            self.bar.update()
        elif self.enabled:
            of = f"/{self.total}" if self.total is not None else ""
            text = f"[{self.elapsed:8.1f} s] {self.count}{of} {self.what}" + (f": {message}" if message else "")
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
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
