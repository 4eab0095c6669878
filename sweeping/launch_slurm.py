"""The SLURM launcher, through submitit: a job array for the extractions, then a job array of chains
per dataset, each depending (``afterok``) on its own dataset's extraction task; chains of datasets
without an extraction form one array with no dependency.

Each array task asks for the sweep's CPUs, GPUs (on CUDA), memory, time and partition; its setup
puts this checkout first on PYTHONPATH (the cluster's nodes must see it, and the data root, feature
cache and run store, on a shared filesystem) and sets OMP_NUM_THREADS. Logs go to one folder per
sweep. A task whose job fails ends with a non-zero status, so SLURM never starts the chains that
wait for it (``--kill-on-invalid-dep``: they are cancelled instead of pending forever).

The command follows its tasks through their result files and ``squeue`` (never ``sacct``, which
fails on clusters without accounting): one line per finished job, a failed one with its log file.
Ctrl-C cancels the submitted jobs and waits until they have left the queue.

``executor="local"`` runs the same arrays through submitit's local executor (a separate process per
task on this machine): it has no dependencies, so a chain array is submitted when its extraction
has finished.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from sweeping.launch import failure, require, worker_pythonpath
from sweeping.spec import Resources, SweepJob
from training.jobs import JobResult, run_job
from utils.errors import UsageError, UserError

POLL_S = 0.5  # how often the result files are looked at
QUEUE_POLL_S = (1.0, 10.0)  # squeue at a growing interval between these: schedulers dislike tight polling
RESULT_WAIT_S = 15.0  # how long a task that left the queue gets for its result file to appear (shared filesystems)
STOP_WAIT_S = 120.0  # how long Ctrl-C waits for the cancelled jobs to leave the queue
# States of a job that has ended (squeue --states=all shows them for a few minutes, MinJobAge).
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "TIMEOUT",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a newline in a #SBATCH line would start a shell command


class TaskFailed(Exception):
    """A task's job failed: raised so the task ends with a non-zero status; the message is the job's error."""


def run_task(work) -> JobResult:
    """What an array task runs: the job, and a non-zero exit when it failed (so ``afterok`` holds back its chains)."""
    result = run_job(work)
    if not result.ok:
        raise TaskFailed(result.error)
    return result


def arrays(jobs: list[SweepJob]) -> list[tuple[str, list[SweepJob], str | None]]:
    """(array name, its jobs, the extraction job it depends on) in submission order."""
    extractions = [job for job in jobs if job.is_extraction]
    found = [("extract", extractions, None)] if extractions else []
    free = [job for job in jobs if not job.is_extraction and not job.needs]
    if free:
        found.append(("chains", free, None))
    for extraction in extractions:
        chains = [job for job in jobs if job.needs == extraction.name]
        if chains:
            found.append((f"chains-{extraction.work.dataset}", chains, extraction.name))
    return found


def _script_safe(what: str, value: str) -> str:
    """``value`` for an sbatch script, where each parameter is one ``#SBATCH`` line: no control characters."""
    if CONTROL.search(value):
        raise UsageError(f"{what} {value!r} holds a control character (a newline, tab …); an sbatch script cannot")
    return value


def _job_name(sweep: str, array: str) -> str:
    """A job name of letters, digits and ``._-`` only (it is shown by squeue and written into the script)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{sweep}-{array}").strip("-") or "sweep"


def _export(name: str, value: object) -> str:
    return f"export {name}={shlex.quote(str(value))}"


def _parameters(resources: Resources, device: str, name: str, parallel: int | None) -> dict:
    """The sbatch parameters of one array, in submitit's (``_make_sbatch_string``) names."""
    found = {
        "job_name": name,
        "time": resources.time_min,
        "cpus_per_task": resources.cpus_per_job,
        "gpus_per_node": resources.gpus_per_job if device == "cuda" else None,
        "partition": _script_safe("the partition", resources.partition) if resources.partition else None,
        "mem": f"{resources.mem_gb}GB" if resources.mem_gb else None,
        "setup": [
            _export("PYTHONPATH", _script_safe("this checkout's path", worker_pythonpath())),
            _export("OMP_NUM_THREADS", resources.cpus_per_job),
        ],
        # chains whose extraction failed are cancelled rather than left pending (DependencyNeverSatisfied)
        "additional_parameters": {"kill-on-invalid-dep": "yes"},
    }
    if parallel:
        found["array_parallelism"] = parallel
    return {key: value for key, value in found.items() if value is not None}


def sbatch_text(
    jobs: list[SweepJob], resources: Resources, device: str, log_dir: Path, sweep: str, parallel: int | None = None
) -> str:
    """The sbatch script of every array, as submitit writes them; job ids that exist only after
    submission appear as ``<extract>`` in the dependencies."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = Path(_script_safe("--log-dir", str(log_dir))) / "%j"
    extractions = [job.name for job in jobs if job.is_extraction]
    parts = []
    for name, members, needs in arrays(jobs):
        parameters = _parameters(resources, device, _job_name(sweep, name), parallel)
        if needs is not None:
            parameters["dependency"] = f"afterok:<extract>_{extractions.index(needs)}"
        command = shlex.join([sys.executable, "-u", "-m", "submitit.core._submit", str(folder)])
        text = _make_sbatch_string(command=command, folder=folder, map_count=len(members), **parameters)
        listing = "\n".join(f"#   task {i}: {' '.join(job.name.split())}" for i, job in enumerate(members))
        parts.append(f"# array {name}: {len(members)} task(s)\n{listing}\n{text}")
    return "\n".join(parts)


@contextlib.contextmanager
def _submitit_logs_once() -> Iterator[None]:
    """submitit's log records reach this project's handler only (submitit adds two of its own, to stdout and
    stderr, so each warning would be printed three times); its handlers are back afterwards."""
    logger = logging.getLogger("submitit")
    own = list(logger.handlers)
    for handler in own:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in own:
            logger.addHandler(handler)


def _squeue() -> str:
    """This user's jobs, one line per array task: ``ID|STATE|REASON`` (finished ones too, while SLURM keeps them)."""
    return subprocess.run(
        ["squeue", "--me", "--array", "--noheader", "--states=all", "--format=%i|%T|%r"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    ).stdout


def _scancel(ids: list[str]) -> None:
    subprocess.run(["scancel", *ids], capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=False)


class Queue:
    """The states of the submitted tasks, read with ``squeue`` at a growing interval."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[str, str]] = {}  # task id -> (state, reason)
        self.interval, self.next_at = QUEUE_POLL_S[0], 0.0
        self.ended_at: dict[str, float] = {}  # when a task was first seen ended (or gone)
        self.failing = False

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next_at:
            return
        self.interval = min(self.interval * 1.25, QUEUE_POLL_S[1])
        self.next_at = now + self.interval
        try:
            text = _squeue()
        except (OSError, subprocess.SubprocessError) as error:
            if not self.failing:  # said once per outage; the states stay as last read
                print(f"squeue failed ({' '.join(str(error).split())}); retrying", file=sys.stderr, flush=True)
            self.failing = True
            return
        self.failing = False
        self.states = {}
        for line in text.splitlines():
            task, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            self.states[task] = (state.split()[0] if state.strip() else "", reason.strip())

    def active(self, task: str) -> bool:
        return self.failing or self.states.get(task, ("",))[0] not in (*ENDED, "")

    def ended(self, task: str) -> tuple[str, str] | None:
        """(state, reason) of a task that has ended (or left the queue) at least ``RESULT_WAIT_S`` ago, else None."""
        if self.active(task):
            return None
        first = self.ended_at.setdefault(task, time.monotonic())
        state, reason = self.states.get(task, ("no longer in the queue", ""))
        if state in ("COMPLETED", "no longer in the queue") and time.monotonic() - first < RESULT_WAIT_S:
            return None  # its result file may not have reached this node yet
        return state, reason


def _result(handle, job: SweepJob) -> JobResult:
    """What a task's result file says: its JobResult, or its one-line error with the task's log file."""
    from submitit.core.utils import pickle_load

    outcome, payload = pickle_load(handle.paths.result_pickle)
    if outcome == "success":
        return payload
    lines = [line for line in str(payload).splitlines() if line.strip()]
    last = lines[-1] if lines else "failed"
    own = f"{TaskFailed.__module__}.{TaskFailed.__name__}: "
    error = last[len(own) :] if last.startswith(own) else f"{last} (a bug: the traceback is in the log)"
    return failure(job, f"{error}; log: {handle.paths.stderr}")


def run_slurm(
    jobs: list[SweepJob],
    resources: Resources,
    device: str,
    report: Callable[[SweepJob, JobResult], None],
    log_dir: Path,
    sweep: str,
    parallel: int | None = None,
    executor: str = "slurm",
) -> None:
    submitit = require("submitit", "slurm")
    _script_safe("--log-dir", str(log_dir))
    log_dir.mkdir(parents=True, exist_ok=True)

    def executor_for(name: str, needs_id: str | None):
        made = submitit.AutoExecutor(folder=log_dir / "%j", cluster=executor)
        settings = _parameters(resources, device, _job_name(sweep, name), parallel)
        generic = {
            "name": settings.pop("job_name"),
            "timeout_min": settings.pop("time"),
            "cpus_per_task": settings.pop("cpus_per_task"),
        }
        if "gpus_per_node" in settings:
            generic["gpus_per_node"] = settings.pop("gpus_per_node")
        if "mem" in settings:
            settings.pop("mem")
            generic["mem_gb"] = resources.mem_gb
        if needs_id is not None:
            settings["dependency"] = f"afterok:{needs_id}"
        if executor == "local":
            settings = {"local_setup": settings["setup"]}
        else:
            settings = {f"slurm_{key}": value for key, value in settings.items()}
        made.update_parameters(**generic, **settings)
        return made

    submitted: dict = {}  # submitit job -> SweepJob
    results: dict[str, JobResult] = {}
    deferred: list[tuple[str, list[SweepJob], str]] = []
    by_name = {}
    queue = Queue()

    def submit(name: str, members: list[SweepJob], needs_id: str | None) -> None:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal; it is said below
                handles = executor_for(name, needs_id).map_array(run_task, [m.work for m in members])
        except (OSError, subprocess.SubprocessError, submitit.core.utils.FailedJobError) as error:  # sbatch's refusal
            said = " ".join(line.removeprefix("sbatch: error: ") for line in str(error).splitlines() if line.strip())
            raise UserError(f"sbatch refused the array {name}: {said}") from None
        for job, handle in zip(members, handles):
            submitted[handle] = job
            by_name[job.name] = handle

    def finished(handle, job: SweepJob) -> JobResult | None:
        if handle.paths.result_pickle.exists():
            return _result(handle, job)
        if executor == "local":
            return (
                failure(job, f"the task ended without a result; log: {handle.paths.stderr}") if handle.done() else None
            )
        ended = queue.ended(str(handle.job_id))
        if ended is None:
            return None
        state, reason = ended
        if "Dependency" in reason:
            return failure(job, f"not run: {job.needs} failed")
        why = f", {reason}" if reason and reason != "None" else ""
        return failure(
            job, f"the SLURM job {handle.job_id} ended {state}{why} without a result; log: {handle.paths.stderr}"
        )

    with _submitit_logs_once():
        try:
            for name, members, needs in arrays(jobs):
                if needs is None:
                    submit(name, members, None)
                elif executor == "local":
                    deferred.append((name, members, needs))  # the local executor has no dependencies: wait here
                else:
                    submit(name, members, by_name[needs].job_id)
            while submitted or deferred:
                if executor != "local":
                    queue.refresh()
                for handle, job in list(submitted.items()):
                    result = finished(handle, job)
                    if result is not None:
                        del submitted[handle]
                        results[job.name] = result
                        report(job, result)
                for entry in [d for d in deferred if d[2] in results]:
                    deferred.remove(entry)
                    name, members, needs = entry
                    if results[needs].ok:
                        submit(name, members, None)
                    else:
                        for job in members:
                            report(job, failure(job, f"not run: {needs} failed"))
                time.sleep(POLL_S)
        except BaseException:
            _cancel(list(submitted), executor, queue)
            raise


def _cancel(handles: list, executor: str, queue: Queue) -> None:
    """Ctrl-C (or SIGTERM, or an error) while tasks run: cancel them, and wait until they have left the queue,
    so that none of them is still writing when the command has ended."""
    if executor == "local":
        for handle in handles:
            handle.cancel(check=False)
        return
    tasks = [str(handle.job_id) for handle in handles]
    ids = sorted({task.split("_")[0] for task in tasks}, key=int)
    if not ids:
        return
    print(f"cancelling the sweep's SLURM jobs: scancel {' '.join(ids)}", file=sys.stderr, flush=True)
    _scancel(ids)
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        queue.refresh(force=True)
        left = [task for task in tasks if queue.active(task)]
        if not left:
            return
        if time.monotonic() > deadline:
            print(f"{len(left)} task(s) still stopping after {STOP_WAIT_S:.0f} s: see squeue", file=sys.stderr)
            return
        time.sleep(1.0)
