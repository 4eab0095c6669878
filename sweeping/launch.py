"""What every launcher shares: which jobs still need to run, the progress lines and the summary,
and the local launcher (this process, or `--parallel` worker processes of :mod:`sweeping.worker`).

A job whose runs are all in the store, complete and verified, is skipped; so is an extraction
whose cache is there or whose chains are all done. A job killed by a scheduler left nothing
published for its unfinished runs (the store publishes atomically), so the next launch redoes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable

from sweeping.spec import Sweep, SweepJob
from training.jobs import JobResult, JobState, run_job
from utils.errors import UserError

REQUIREMENTS = "requirements-launchers.txt"
POLL_S = 0.2  # how often the local launcher looks at its workers
STOP_GRACE_S = 10  # how long stopped workers get to unwind before they are killed
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # what workers import: the code that submitted them


def require(module: str, launcher: str):
    """Import a launcher's package, or one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"--launcher {launcher} needs the package {module}; install the launchers with: "
            f"python3 -m pip install -r {REQUIREMENTS}"
        ) from None


SCHEDULER_TIMEOUT_S = 30


def require_scheduler() -> None:
    """One line, before anything is created, when this machine cannot submit to SLURM (no sbatch, no controller)."""
    import shutil
    import subprocess

    advice = "run sweep.py on the cluster's login node, or use --launcher local"
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        raise UserError(f"--launcher slurm needs SLURM's sbatch and scontrol, and this machine has none; {advice}")
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"--launcher slurm: SLURM's controller did not answer in {SCHEDULER_TIMEOUT_S} s; {advice}"
        ) from None
    if ping.returncode != 0:
        lines = [line for line in (ping.stderr + ping.stdout).splitlines() if line.strip()]
        said = " ".join(lines[-1].split()) if lines else f"status {ping.returncode}"
        raise UserError(f"--launcher slurm: SLURM's controller cannot be reached (scontrol ping: {said}); {advice}")


def worker_pythonpath() -> str:
    """PYTHONPATH for workers on this machine: the project first, so they import the code that submitted them."""
    rest = os.environ.get("PYTHONPATH", "")
    return f"{PROJECT_ROOT}{os.pathsep}{rest}" if rest else str(PROJECT_ROOT)


def states(sweep: Sweep) -> dict[str, JobState]:
    return {job.name: job.state() for job in sweep.jobs}


def pending(sweep: Sweep, found: dict[str, JobState]) -> list[SweepJob]:
    """The jobs to run, extractions first; a chain whose extraction is not run needs nothing."""
    chains = [job for job in sweep.jobs if not job.is_extraction and not found[job.name].finished]
    needed = {job.needs for job in chains if job.needs}
    extractions = [
        job for job in sweep.jobs if job.is_extraction and job.name in needed and not found[job.name].finished
    ]
    running = {job.name for job in extractions}
    return extractions + [job if job.needs in running else dataclasses.replace(job, needs=None) for job in chains]


def dry_run_text(sweep: Sweep, found: dict[str, JobState], store: Path) -> str:
    lines = [f"{found[job.name].describe():<26} {job.name}" for job in sweep.jobs]
    words = [state.word for state in found.values()]
    extractions = sum(job.is_extraction for job in sweep.jobs)
    lines.append(
        f"{sweep.name}: {len(sweep.jobs)} jobs ({extractions} extractions, {len(sweep.jobs) - extractions} "
        f"chains): {words.count('done')} done, {words.count('damaged')} damaged, "
        f"{words.count('missing')} missing; runs in {store}/"
    )
    return "\n".join(lines)


class Tally:
    """A line per finished job (with its wall time, or its error) and the summary at the end."""

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stdout
        self.done: list[JobResult] = []
        self.failed: list[JobResult] = []
        self.start = time.perf_counter()

    def __call__(self, job: SweepJob, result: JobResult) -> None:
        (self.done if result.ok else self.failed).append(result)
        count = f"[{len(self.done) + len(self.failed)}/{self.total}]"
        if result.ok:
            runs = f", {result.trained} runs trained, {result.reused} reused" if not job.is_extraction else ""
            print(
                f"{count} done    {job.name}  {result.wall_s:.1f} s (pid {result.pid} on {result.host}{runs})",
                file=self.stream,
                flush=True,
            )
        else:
            print(f"{count} FAILED  {job.name}: {result.error}", file=self.stream, flush=True)

    @property
    def remaining(self) -> int:
        return self.total - len(self.done) - len(self.failed)

    def summary(self, skipped: int) -> str:
        return (
            f"{len(self.done)} done, {len(self.failed)} failed, {self.remaining} remaining "
            f"({skipped} already done before this launch) in {time.perf_counter() - self.start:.1f} s"
        )


def failure(job: SweepJob, error: BaseException | str) -> JobResult:
    """A result for a job whose worker died or whose engine reported an error."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    first = next((line for line in str(text).splitlines() if line.strip()), "failed")
    return JobResult(job.name, False, 0.0, 0, "", error=" ".join(first.split()))


def needs_of(job: SweepJob, results: dict[str, JobResult]) -> tuple[JobResult, ...]:
    return (results[job.needs],) if job.needs in results else ()


# -- local -------------------------------------------------------------------------------------------------


def run_local(jobs: list[SweepJob], parallel: int, report: Callable[[SweepJob, JobResult], None]) -> None:
    """In this process, one job after another (``parallel`` ≤ 1), or ``parallel`` worker processes at a time,
    each a fresh interpreter running one job (:mod:`sweeping.worker`), a chain started when its extraction is done.

    Ctrl-C (or SIGTERM) of the sweep: the workers get SIGTERM and unwind (no lock, no unpublished run);
    one that has not stopped after ``STOP_GRACE_S`` is killed.
    """
    results: dict[str, JobResult] = {}
    if parallel <= 1:
        for job in jobs:
            results[job.name] = run_job(job.work, *needs_of(job, results))
            report(job, results[job.name])
        return
    import pickle
    import subprocess
    import tempfile

    env = {**os.environ, "PYTHONPATH": worker_pythonpath()}
    waiting = list(jobs)
    running: dict[subprocess.Popen, tuple[SweepJob, object]] = {}

    def start(job: SweepJob) -> None:
        output = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [sys.executable, "-m", "sweeping.worker"], stdin=subprocess.PIPE, stdout=output, env=env
        )
        with process.stdin:
            process.stdin.write(pickle.dumps((job.work, needs_of(job, results))))
        running[process] = (job, output)

    def finish(process: subprocess.Popen) -> None:
        job, output = running.pop(process)
        with output:
            output.seek(0)
            data = output.read()
        result = None
        if process.returncode == 0:
            with contextlib.suppress(pickle.UnpicklingError, EOFError):
                result = pickle.loads(data)
        # None: killed (scheduler, out of memory) or died before answering
        results[job.name] = result or failure(job, f"the worker process ended with status {process.returncode}")
        report(job, results[job.name])

    try:
        while waiting or running:
            for job in [job for job in waiting if not job.needs or job.needs in results]:
                if len(running) >= parallel:
                    break
                waiting.remove(job)
                start(job)
            for process in [process for process in running if process.poll() is not None]:
                finish(process)
            time.sleep(POLL_S)
    except BaseException:
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        raise
