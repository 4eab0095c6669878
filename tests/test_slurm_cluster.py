"""The SLURM launcher on a real single-node SLURM cluster (``scripts/local_slurm.sh start``; .ci/run starts
it): real sbatch arrays and dependencies, squeue, scancel, a cluster without accounting.

The embedded sweep gives the local launcher's CSV with a stderr as quiet as the local launcher's; chains
wait (``afterok``) for their extraction; Ctrl-C leaves no job, lock or unpublished run; a task cancelled
with ``scancel`` is the only work the next launch redoes; a job failing inside SLURM is one line naming
its log file. Without a cluster these tests are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_image_folder
from tests.test_sweep_engines import LONG, TINY

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONF = Path("/var/tmp/selfdistill-slurm/slurm.conf")  # scripts/local_slurm.sh's default folder
IMAGES = TINY.replace('datasets = ["digits", "imagefolder"]', 'datasets = ["imagefolder"]')  # one extraction, one chain

pytestmark = pytest.mark.slow


def _problem(conf: Path) -> str | None:
    """Why the cluster cannot be used, or None when its node answers."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH: start a cluster with scripts/local_slurm.sh start"
    if not conf.is_file():
        return f"no {conf}: start a cluster with scripts/local_slurm.sh start (or set SLURM_CONF)"
    found = subprocess.run(
        ["sinfo", "--noheader", "--format=%t"],
        env={**os.environ, "SLURM_CONF": str(conf)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    states = found.stdout.split()
    if found.returncode or not any(state.startswith(("idle", "mix", "alloc")) for state in states):
        return f"the SLURM cluster of {conf} has no node up ({(found.stderr or ' '.join(states)).strip()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> Path:
    conf = Path(os.environ.get("SLURM_CONF") or DEFAULT_CONF)
    problem = _problem(conf)
    if problem and os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI runs these tests on a real cluster, but {problem}")
    if problem:
        pytest.skip(problem)
    return conf


@pytest.fixture
def env(cluster, tmp_path) -> dict:
    return {
        **os.environ,
        "SLURM_CONF": str(cluster),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        "SELFDISTILL_FEATURE_ROOT": str(tmp_path / "features"),
    }


def command(tmp_path: Path, sweep_file: Path, tag: str, *args: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "sweep.py"),
        str(sweep_file),
        "-c",
        str(tmp_path / f"runs-{tag}"),
        "--csv-dir",
        str(tmp_path / f"results-{tag}"),
        "--log-dir",
        str(tmp_path / f"logs-{tag}"),
        *args,
    ]


def run(argv: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def slurm(env: dict, *argv: str) -> str:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def queued(env: dict, ids: set[str]) -> list[str]:
    """The lines of squeue (pending, running, completing) that belong to the jobs ``ids``."""
    lines = slurm(env, "squeue", "--me", "--array", "--noheader", "--format=%i %T").splitlines()
    return [line for line in lines if line.split("_")[0].split()[0] in ids]


def job_ids(logs: Path) -> set[str]:
    """The SLURM jobs a sweep submitted: submitit makes a folder per job (``<job>``) and per array task
    (``<job>_<task>``)."""
    return {entry.name.split("_")[0] for entry in logs.iterdir() if re.fullmatch(r"\d+(_\d+)?", entry.name)}


def rows(tmp_path: Path, tag: str, ctype: str) -> list[dict]:
    with open(tmp_path / f"results-{tag}" / f"{ctype}.csv", newline="") as stream:
        return sorted(csv.DictReader(stream), key=lambda row: row["Run"])


def published(store: Path) -> dict[str, bytes]:
    return {entry.name: (entry / "run.json").read_bytes() for entry in store.iterdir() if entry.is_symlink()}


def assert_clean(store: Path) -> None:
    """No lock held and no run folder that is not published."""
    locks = store / ".locks"
    assert not locks.exists() or not list(locks.iterdir()), "a lock was left"
    linked = {entry.resolve() for entry in store.iterdir() if entry.is_symlink()}
    assert set((store / ".runs").iterdir()) == linked, "an unpublished run folder was left"


def started_until_a_run_is_published(argv: list[str], env: dict, cwd: Path, store: Path):
    """The sweep ``argv`` started, once it has published its first run (the jobs are mid-run)."""
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (store.is_dir() and any(entry.is_symlink() for entry in store.iterdir())):
        assert time.monotonic() < deadline and process.poll() is None, process.poll()
        time.sleep(0.1)
    return process, store


def test_the_embedded_sweep_gives_the_local_csv_with_a_quiet_stderr(tmp_path, env):
    local = run(command(tmp_path, REPO / "sweeps/embedded.toml", "local", "--epochs", "2"), env, tmp_path)
    assert local.returncode == 0, local.stderr
    found = run(
        command(tmp_path, REPO / "sweeps/embedded.toml", "slurm", "--epochs", "2", "--launcher", "slurm"), env, tmp_path
    )
    assert found.returncode == 0, found.stderr
    assert found.stderr == "", found.stderr  # no sacct warnings, no submitit lines: a line per job on stdout only
    assert "2 done, 0 failed, 0 remaining" in found.stdout and found.stdout.count(" done    ") == 2
    expected = rows(tmp_path, "local", "cc")
    assert len(expected) == 2 * 6 * 15 and rows(tmp_path, "slurm", "cc") == expected
    hosts = {line.split(" on ")[1].split(",")[0] for line in found.stdout.splitlines() if " done    " in line}
    assert hosts == {os.uname().nodename.split(".")[0]}


def test_chains_are_held_by_afterok_until_their_extraction_has_run(tmp_path, env):
    images = make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_split=(4, 3))
    path = tmp_path / "images.toml"
    path.write_text(IMAGES)
    argv = command(tmp_path, path, "images", "--launcher", "slurm", "--data-root", str(images))
    process = subprocess.Popen(argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    logs, held = tmp_path / "logs-images", None
    deadline = time.monotonic() + 120
    while held is None and process.poll() is None and time.monotonic() < deadline:
        ids = sorted(job_ids(logs), key=int) if logs.is_dir() else []
        if len(ids) == 2:
            held = slurm(env, "scontrol", "show", "job", ids[1])
        time.sleep(0.05)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and "2 done, 0 failed" in out, out
    extraction, chain = sorted(job_ids(logs), key=int)
    assert held is not None, "the chain's job was never seen in the queue"
    assert re.search(
        rf"JobState=PENDING Reason=Dependency Dependency=afterok:{extraction}(_0)?\(unfulfilled\)", held
    ), held
    assert "KillOInInvalidDependent=Yes" in held  # scontrol's spelling: cancelled, not pending, if it fails
    times = {}
    for job in (extraction, chain):
        shown = slurm(env, "scontrol", "show", "job", job)
        times[job] = re.search(r"StartTime=(\S+)", shown)[1], re.search(r"EndTime=(\S+)", shown)[1]
    assert times[chain][0] >= times[extraction][1], times  # ISO times: the chain started after the extraction ended


def test_ctrl_c_cancels_the_jobs_and_leaves_no_lock_or_unpublished_run(tmp_path, env):
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    argv = command(tmp_path, path, "long", "--launcher", "slurm")
    process, store = started_until_a_run_is_published(argv, env, tmp_path, tmp_path / "runs-long")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)
    assert (process.returncode, err.splitlines()[-1]) == (130, "interrupted"), err
    assert "cancelling the sweep's SLURM jobs: scancel " in err
    assert queued(env, job_ids(tmp_path / "logs-long")) == [], "a job is still in the queue"
    assert_clean(store)
    assert published(store)


def test_a_task_cancelled_with_scancel_is_all_the_next_launch_trains(tmp_path, env):
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    argv = command(tmp_path, path, "long", "--launcher", "slurm")
    process, store = started_until_a_run_is_published(argv, env, tmp_path, tmp_path / "runs-long")
    (job,) = job_ids(tmp_path / "logs-long")
    slurm(env, "scancel", f"{job}_0")  # the digits chain, mid-run
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "small/digits" in failed[0] and f"{job}_0 ended CANCELLED" in failed[0], out
    assert f"log: {tmp_path / 'logs-long' / f'{job}_0' / f'{job}_0_0_log.err'}" in failed[0], failed
    assert "1 done, 1 failed, 0 remaining" in out
    assert_clean(store)
    kept = published(store)
    assert 0 < len(kept) < 12
    again = run(argv, env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 job(s) to run on slurm, 1 already done" in again.stdout, again.stdout
    trained = re.search(r"(\d+) runs trained, (\d+) reused", again.stdout)
    digits = sum(name.startswith("digits") for name in kept)
    assert (int(trained[1]), int(trained[2])) == (6 - digits, digits), again.stdout
    assert all(published(store)[name] == content for name, content in kept.items())
    assert len(published(store)) == 12


def test_a_job_failing_inside_slurm_is_one_line_with_its_log_and_a_nonzero_exit(tmp_path, env):
    path = tmp_path / "images.toml"
    path.write_text(IMAGES)
    empty = tmp_path / "no-data"
    empty.mkdir()
    found = run(command(tmp_path, path, "missing", "--launcher", "slurm", "--data-root", str(empty)), env, tmp_path)
    assert found.returncode == 1, found.stderr
    failed = [line for line in found.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 2, found.stdout
    extraction, chain = sorted(job_ids(tmp_path / "logs-missing"), key=int)
    log = tmp_path / "logs-missing" / extraction / f"{extraction}_0_log.err"  # one task: a job, not an array
    assert "FAILED  extract imagefolder: " in failed[0] and failed[0].endswith(f"; log: {log}"), failed
    assert str(empty) in failed[0] and log.is_file()
    assert failed[1].endswith("not run: extract imagefolder failed"), failed
    assert found.stderr.splitlines() == [
        "error: 2 of 2 job(s) failed (their errors are above); run the same command again to retry them"
    ], found.stderr
    assert queued(env, {extraction, chain}) == []


def test_an_array_that_sbatch_refuses_is_one_line_with_sbatchs_reason(tmp_path, env):
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    found = run(command(tmp_path, path, "refused", "--launcher", "slurm", "--partition", "nowhere"), env, tmp_path)
    assert found.returncode == 1 and found.stderr.count("\n") == 1, found.stderr
    assert found.stderr.startswith("error: sbatch refused the array chains: ") and "nowhere" in found.stderr
