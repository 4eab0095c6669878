"""The SLURM launcher, through submitit: a job array for the extractions, then a job array of chains
per dataset, each depending (``afterok``) on its own dataset's extraction task; chains of datasets
without an extraction form one array with no dependency.

Each array task asks for the sweep's CPUs, GPUs (on CUDA), memory, time and partition; its setup
puts this checkout first on PYTHONPATH (the cluster's nodes must see it, and the data root, feature
cache and run store, on a shared filesystem) and sets OMP_NUM_THREADS. Logs go to one folder per
sweep. Ctrl-C leaves submitted jobs running and prints the ``scancel`` command.

``executor="local"`` runs the same arrays through submitit's local executor (a separate process per
task on this machine): it has no dependencies, so a chain array is submitted when its extraction
has finished. That is how the tests exercise this launcher; the SLURM path itself has not been
run against a real scheduler.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from sweeping.launch import failure, require, worker_pythonpath
from sweeping.spec import Resources, SweepJob
from training.jobs import JobResult, run_job

POLL_S = 0.5


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


def _setup(resources: Resources) -> list[str]:
    return [f"export PYTHONPATH={shlex.quote(worker_pythonpath())}", f"export OMP_NUM_THREADS={resources.cpus_per_job}"]


def _parameters(resources: Resources, device: str, name: str, parallel: int | None) -> dict:
    found = {
        "job_name": name,
        "time": resources.time_min,
        "cpus_per_task": resources.cpus_per_job,
        "gpus_per_node": resources.gpus_per_job if device == "cuda" else None,
        "partition": resources.partition,
        "mem": f"{resources.mem_gb}GB" if resources.mem_gb else None,
        "setup": _setup(resources),
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

    extractions = [job.name for job in jobs if job.is_extraction]
    parts = []
    for name, members, needs in arrays(jobs):
        parameters = _parameters(resources, device, f"{sweep}-{name}", parallel)
        if needs is not None:
            parameters["dependency"] = f"afterok:<extract>_{extractions.index(needs)}"
        command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {log_dir / '%j'}"
        text = _make_sbatch_string(command=command, folder=log_dir / "%j", map_count=len(members), **parameters)
        listing = "\n".join(f"#   task {i}: {job.name}" for i, job in enumerate(members))
        parts.append(f"# array {name}: {len(members)} task(s)\n{listing}\n{text}")
    return "\n".join(parts)


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
    log_dir.mkdir(parents=True, exist_ok=True)

    def executor_for(name: str, needs_id: str | None):
        made = submitit.AutoExecutor(folder=log_dir / "%j", cluster=executor)
        settings = _parameters(resources, device, f"{sweep}-{name}", parallel)
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

    def submit(name: str, members: list[SweepJob], needs_id: str | None) -> None:
        for job, handle in zip(members, executor_for(name, needs_id).map_array(run_job, [m.work for m in members])):
            submitted[handle] = job
            by_name[job.name] = handle

    try:
        for name, members, needs in arrays(jobs):
            if needs is None:
                submit(name, members, None)
            elif executor == "local":
                deferred.append((name, members, needs))  # the local executor has no dependencies: wait here
            else:
                submit(name, members, by_name[needs].job_id)
        while submitted or deferred:
            for handle in [h for h in submitted if h.done()]:
                job = submitted.pop(handle)
                try:
                    results[job.name] = handle.result()
                except Exception as error:  # killed, timed out, or the job could not start
                    results[job.name] = failure(job, error)
                report(job, results[job.name])
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
        if executor == "local":
            for handle in submitted:
                handle.cancel(check=False)
        else:
            ids = sorted({str(handle.job_id).split("_")[0] for handle in submitted})
            print(f"the submitted SLURM jobs keep running; cancel them with: scancel {' '.join(ids)}", file=sys.stderr)
        raise
