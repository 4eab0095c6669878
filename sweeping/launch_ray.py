"""The Ray launcher: one Ray task per job; a chain's task takes its extraction's result as an argument,
so Ray runs it only after that extraction (and only that one) has finished.

``address`` (or ``RAY_ADDRESS``) connects to a cluster, whose workers get this project as their
``runtime_env`` working_dir; without one, a local instance starts with ``num_cpus`` CPUs and its
workers import this checkout (PYTHONPATH). An address that does not answer is one line naming it and
what to check, within seconds (Ray itself retries for minutes); so is a refusal by the cluster (since
Ray 2.59 clusters require a token by default). Each task asks for its job's CPUs, and one GPU when the
sweep runs on CUDA; it sets OMP_NUM_THREADS to its CPUs (the jobs scope torch's threads to them as
well) and runs in a fresh worker process (``max_calls=1``), so a job's memory goes with it. A
killed worker is not retried here: the next launch redoes the job. Usage statistics are off.
"""

from __future__ import annotations

import os
import socket
from typing import Callable
from urllib.parse import urlsplit

from sweeping.launch import PROJECT_ROOT, failure, require, worker_pythonpath
from sweeping.spec import Resources, SweepJob
from training.jobs import JobResult, run_job
from utils.errors import UserError

# What a cluster's workers do not need from the project folder (results, runs, caches, data).
STOP_GRACE_S = 10  # how long stopped tasks get to unwind before their workers are killed
EXCLUDES = [".git", "checkpoints", "results", "reports", "feature_cache", "datasets", "sweep-logs", "*.pt", "*.npz"]
CONNECT_TIMEOUT_S = 5.0  # how long the address gets to accept a TCP connection
# What to check when a cluster cannot be reached or refuses this process, as one sentence.
CHECKS = (
    "check that the cluster runs and that this machine reaches its head node on that port (`ray status` on the "
    "head node; a firewall); and, since Ray 2.59 turns token authentication on by default, that this process "
    "has the cluster's token: the RAY_AUTH_TOKEN variable, the file named by RAY_AUTH_TOKEN_PATH, or "
    "~/.ray/auth_token (print it on the head node with `ray get-auth-token`), with RAY_AUTH_MODE as the "
    "cluster's (token, or disabled)"
)


def unreachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at a cluster address (``host:port`` or ``ray://host:port``), or None; ``auto``
    and addresses without a port are left to Ray."""
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as error:  # a port that is not a number in 0..65535
        return str(error)
    if not host or port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__


def refused(address: str, problem: str) -> UserError:
    return UserError(f"cannot connect to the Ray cluster at {address} ({problem}): {CHECKS}")


def connect(ray, address: str, **options) -> None:
    """``ray.init`` on the cluster at ``address``, or one line naming the address and what to check."""
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as error:  # e.g. its token is not ours
        raise refused(address, " ".join(str(error).split())[:300] or type(error).__name__) from None


def run_ray(
    jobs: list[SweepJob],
    resources: Resources,
    device: str,
    report: Callable[[SweepJob, JobResult], None],
    address: str | None = None,
    num_cpus: int | None = None,
) -> None:
    address = address or os.environ.get("RAY_ADDRESS") or None
    problem = unreachable(address) if address else None
    if problem:  # said now: ray.init retries an address that does not answer for minutes
        raise refused(address, problem)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # read by ray when it starts: no network at run time
    ray = require("ray", "ray")
    env = {"OMP_NUM_THREADS": str(resources.cpus_per_job), "RAY_USAGE_STATS_ENABLED": "0"}
    if address:
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES, "env_vars": env}
        connect(ray, address, runtime_env=runtime_env, logging_level="WARNING")
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
