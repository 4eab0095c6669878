"""Sweeps on real engines on this machine: the local launcher's worker processes, a local Ray
instance and submitit's local executor (a process per job) give the in-process launcher's results
CSV; a worker killed after its first published run costs no run and no row at the next launch; the
embedded sweep agrees on every launcher; Ctrl-C leaves no lock or unpublished run."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

import sweep
from tests.conftest import make_image_folder

REPO = Path(__file__).resolve().parents[1]
TINY = """
name = "tiny"
device = "cpu"
precision = "fp32"
depth = 18
weights = "none"
seeds = [0]
corruption = [0.3, 0.5]
rounds = 1
epochs = 2
[grids.small]
ctype = "sym"
datasets = ["digits", "imagefolder"]
"""
ENGINES = {
    "pool": ["--parallel", "2"],
    "ray": ["--launcher", "ray", "--parallel", "2"],
    "submitit": ["--launcher", "slurm", "--slurm-executor", "local"],
}

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_ray_usage_stats(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    images = make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_split=(4, 3))  # 21 images
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path, images


def launch(root: Path, sweep_file: Path, tag: str, *args: str, images: Path | None = None) -> int:
    where = ["--data-root", str(images)] if images else []
    return sweep.main(
        [
            str(sweep_file),
            *where,
            "--feature-root",
            str(root / f"features-{tag}"),
            "-c",
            str(root / f"runs-{tag}"),
            "--csv-dir",
            str(root / f"results-{tag}"),
            "--log-dir",
            str(root / f"logs-{tag}"),
            *args,
        ]
    )


def rows(root: Path, tag: str, ctype: str) -> list[dict]:
    with open(root / f"results-{tag}" / f"{ctype}.csv", newline="") as stream:
        return sorted(csv.DictReader(stream), key=lambda row: row["Run"])


def worker_pids(store: Path) -> set[int]:
    return {
        json.loads((entry / "run.json").read_text())["provenance"]["pid"]
        for entry in store.iterdir()
        if entry.is_symlink()
    }


def test_ray_and_submitit_give_the_local_launchers_csv_from_other_processes(tmp_path, tiny, capsys):
    path, images = tiny
    assert launch(tmp_path, path, "local", images=images) == 0
    assert "[1/3] done    extract imagefolder" in capsys.readouterr().out
    expected = rows(tmp_path, "local", "sym")
    assert len(expected) == 12
    for tag, args in ENGINES.items():
        assert launch(tmp_path, path, tag, *args, images=images) == 0, tag
        out = capsys.readouterr().out
        assert "3 done, 0 failed, 0 remaining" in out and "done    extract imagefolder" in out, out
        assert rows(tmp_path, tag, "sym") == expected, tag
        pids = worker_pids(tmp_path / f"runs-{tag}")
        assert len(pids) >= 2 and os.getpid() not in pids, (tag, pids)


def test_a_worker_killed_after_its_first_published_run_loses_nothing(tmp_path, tiny, capsys, monkeypatch):
    path, images = tiny
    assert launch(tmp_path, path, "local", images=images) == 0
    monkeypatch.setenv("SELFDISTILL_KILL_AFTER_PUBLISHES", "1")  # every chain's worker: SIGKILL after one run
    assert launch(tmp_path, path, "killed", *ENGINES["submitit"], images=images) == 1
    out, err = capsys.readouterr()
    assert out.count("FAILED") == 2 and "2 of 3 job(s) failed" in err
    store = tmp_path / "runs-killed"
    published = {entry.name: (entry / "run.json").read_bytes() for entry in store.iterdir() if entry.is_symlink()}
    assert len(published) == 2
    monkeypatch.delenv("SELFDISTILL_KILL_AFTER_PUBLISHES")
    assert launch(tmp_path, path, "killed", *ENGINES["submitit"], images=images) == 0
    out = capsys.readouterr().out
    assert "2 job(s) to run on slurm, 1 already done" in out and out.count("5 runs trained, 1 reused") == 2
    for name, content in published.items():  # reused, not retrained
        assert (store / name / "run.json").read_bytes() == content
    found = rows(tmp_path, "killed", "sym")
    assert found == rows(tmp_path, "local", "sym") and len({row["Run"] for row in found}) == 12


def test_the_embedded_sweep_gives_the_same_results_on_every_launcher(tmp_path, capsys):
    path = REPO / "sweeps/embedded.toml"
    assert launch(tmp_path, path, "local") == 0
    expected = rows(tmp_path, "local", "cc")
    assert len(expected) == 2 * 6 * 15
    for tag, args in ENGINES.items():
        assert launch(tmp_path, path, tag, *args) == 0, tag
        assert "2 done, 0 failed, 0 remaining" in capsys.readouterr().out
        assert rows(tmp_path, tag, "cc") == expected, tag


LONG = """
name = "long"
device = "cpu"
precision = "fp32"
seeds = [0]
corruption = [0.3, 0.5]
rounds = 1
epochs = 400
[grids.small]
ctype = "sym"
datasets = ["digits", "synthetic"]
"""


@pytest.mark.parametrize(
    "launcher", [["--parallel", "2"], ["--launcher", "ray", "--parallel", "2"]], ids=["local pool", "ray"]
)
def test_ctrl_c_stops_the_workers_and_leaves_no_lock_or_temporary_run(tmp_path, launcher):
    """Ctrl-C while two workers train: exit 130, the workers unwind (no lock, no unpublished run
    folder), the runs published so far stay, and the next launch finishes the sweep reusing them."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "long.toml"
    path.write_text(LONG)
    store = tmp_path / "runs"
    command = [
        sys.executable,
        str(REPO / "sweep.py"),
        str(path),
        *launcher,
        "-c",
        str(store),
        "--csv-dir",
        str(tmp_path / "results"),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (store.is_dir() and any(entry.is_symlink() for entry in store.iterdir())):  # a run is published
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert (process.returncode, err.splitlines()[-1]) == (130, "interrupted"), err
    time.sleep(2)  # the terminated workers unwind on their own
    locks = store / ".locks"
    assert not locks.exists() or not list(locks.iterdir()), "a lock was left"
    published = {entry.resolve() for entry in store.iterdir() if entry.is_symlink()}
    assert published and set((store / ".runs").iterdir()) == published, "an unpublished run folder was left"
    kept = {entry.name: (entry / "run.json").read_bytes() for entry in store.iterdir() if entry.is_symlink()}
    again = subprocess.run(command, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert all((store / name / "run.json").read_bytes() == content for name, content in kept.items())
    assert len([entry for entry in store.iterdir() if entry.is_symlink()]) == 2 * 2 * 3
