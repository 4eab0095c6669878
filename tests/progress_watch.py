"""Watch a command's progress as a log would: stderr piped, each line timestamped as it arrives.

:func:`watch` runs a repository script with stderr (and stdout) piped, as batch jobs, CI and ``nohup``
run it, and returns every stderr line with the wall time it arrived; :func:`longest_silence` is the
longest stretch without a line, :func:`final_counts` the last ``done/total`` of each kind of step.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNT = re.compile(r"\[ *[\d.]+ s\] (?:(?P<label>.*?): )?(?P<done>\d+)/(?P<total>\d+) (?P<what>[^:,(]+)")


@dataclass
class Watched:
    status: int
    stdout: str
    lines: list[tuple[float, str]]  # (seconds since the start, stderr line)
    seconds: float  # the whole run

    def longest_silence(self) -> float:
        """The longest wall time between two stderr lines, or between the last line and the exit."""
        times = [t for t, _ in self.lines] + [self.seconds]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def final_counts(self) -> dict[str, tuple[int, int]]:
        """(label, what) -> the last (done, total) printed for it."""
        counts = {}
        for _, line in self.lines:
            match = COUNT.match(line)
            if match:
                key = f"{match['label'] or ''}|{match['what'].strip()}"
                counts[key] = (int(match["done"]), int(match["total"]))
        return counts


def watch(*argv: str, cwd: Path | None = None, timeout: float = 900) -> Watched:
    """Run ``python3 argv…`` (a script path or ``-m module``) from ``cwd`` with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=cwd or REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, str]] = []
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)
    reader.start()
    for line in process.stderr:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    status = process.wait(timeout=timeout)
    reader.join()
    return Watched(status, "".join(out), lines, time.perf_counter() - start)
