"""The Ray launcher: one Ray task per job; a chain's task takes its extraction's result as an argument,
so Ray runs it only after that extraction (and only that one) has finished.

``address`` (or ``RAY_ADDRESS``) connects to a cluster, whose workers get this project as their
``runtime_env`` working_dir; without one, a local instance starts with ``num_cpus`` CPUs and its
workers import this checkout (PYTHONPATH). Each task asks for its job's CPUs, and one GPU when the
sweep runs on CUDA; it sets OMP_NUM_THREADS to its CPUs (the jobs scope torch's threads to them as
well) and runs in a fresh worker process (``max_calls=1``), so a job's memory goes with it. A
killed worker is not retried here: the next launch redoes the job. Usage statistics are off.
"""

from __future__ import annotations

import os
from typing import Callable

from sweeping.launch import PROJECT_ROOT, failure, require, worker_pythonpath
from sweeping.spec import Resources, SweepJob
from training.jobs import JobResult, run_job

# What a cluster's workers do not need from the project folder (results, runs, caches, data).
STOP_GRACE_S = 10  # how long stopped tasks get to unwind before their workers are killed
EXCLUDES = [".git", "checkpoints", "results", "reports", "feature_cache", "datasets", "sweep-logs", "*.pt", "*.npz"]


def run_ray(
    jobs: list[SweepJob],
    resources: Resources,
    device: str,
    report: Callable[[SweepJob, JobResult], None],
    address: str | None = None,
    num_cpus: int | None = None,
) -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # read by ray when it starts: no network at run time
    ray = require("ray", "ray")
    env = {"OMP_NUM_THREADS": str(resources.cpus_per_job), "RAY_USAGE_STATS_ENABLED": "0"}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES, "env_vars": env}
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
    else:
        runtime_env = {"env_vars": {**env, "PYTHONPATH": worker_pythonpath()}}
        ray.init(
            num_cpus=num_cpus,
            runtime_env=runtime_env,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=False,
        )
    try:
        task = ray.remote(
            num_cpus=resources.cpus_per_job,
            num_gpus=resources.gpus_per_job if device == "cuda" else 0,
            max_retries=0,
            max_calls=1,
        )(run_job)
        refs: dict[str, object] = {}
        for job in jobs:
            needs = [refs[job.needs]] if job.needs in refs else []
            refs[job.name] = task.options(name=job.name).remote(job.work, *needs)
        by_ref = {ref: job for job, ref in zip(jobs, refs.values())}
        waiting = list(refs.values())
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                for ref in ready:
                    job = by_ref[ref]
                    try:
                        result = ray.get(ref)
                    except Exception as error:  # the worker died (killed, out of memory) or Ray failed
                        result = failure(job, getattr(error, "cause", None) or error)
                    report(job, result)
        except BaseException:  # Ctrl-C (or SIGTERM) of the sweep: stop the workers
            for ref in waiting:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: it unwinds, leaving no lock or unpublished run
            ray.wait(waiting, num_returns=len(waiting), timeout=STOP_GRACE_S)
            for ref in waiting:
                ray.cancel(ref, force=True)  # whatever did not stop in time is killed; the next launch redoes it
            raise
    finally:
        ray.shutdown()
