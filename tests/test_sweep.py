"""Sweep files: loading and its one-line errors, the paper's 48 jobs, job states from the run store,
the SLURM scripts, and a tiny sweep run by the local launcher in this process."""

from __future__ import annotations

import argparse
import csv
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

import sweep

REPO = Path(__file__).resolve().parents[1]
TINY = """
name = "tiny"
device = "cpu"
precision = "fp32"
seeds = [0]
corruption = [0.3, 0.5]
rounds = 1
epochs = 2
[grids.small]
ctype = "sym"
datasets = ["digits"]
"""


def write(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cli(tmp_path: Path, *args: str) -> int:
    return sweep.main([*args, "-c", str(tmp_path / "ck"), "--csv-dir", str(tmp_path / "results")])


@pytest.fixture(autouse=True)
def no_ray_usage_stats(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")


def test_the_paper_sweep_lists_its_48_jobs_without_any_data(tmp_path, capsys):
    assert cli(tmp_path, str(REPO / "sweeps/paper.toml"), "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("paper: 48 jobs (6 extractions, 42 chains): 0 done, 0 damaged, 48 missing")
    chains = [line for line in out if "lr" in line]
    assert len(chains) == 42 and all("0 of 144 done" in line for line in chains)
    for figure, ctype, wd in (
        ("fig2", "cc", "5e-05"),
        ("fig6b", "asym", "0.0005"),
        ("fig7a", "cc", "2e-05"),
        ("fig8b", "sym", "0.001"),
    ):
        assert sum(f"{figure}/" in line and f" {ctype} " in line and line.endswith(f"wd {wd}") for line in out) == 3
    assert not (tmp_path / "ck").exists()  # a dry run writes nothing


def test_only_one_grid_and_the_embedded_sweep(tmp_path, capsys):
    assert cli(tmp_path, str(REPO / "sweeps/paper.toml"), "--dry-run", "--only", "fig6a") == 0
    assert "12 jobs (6 extractions, 6 chains)" in capsys.readouterr().out
    assert cli(tmp_path, str(REPO / "sweeps/embedded.toml"), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 jobs (0 extractions, 2 chains)" in out and "embedded/digits: cc lr 0.1 wd 0.01" in out


@pytest.mark.parametrize(
    "text, args, message",
    [
        ("name = \n", (), "is not valid TOML: Invalid value (at line 1, column 8)"),
        (TINY + "colour = 1\n", (), "unknown key 'colour'"),
        (TINY.replace('ctype = "sym"', 'ctype = "sym"\nlr = -1'), (), "[grids.small]: lr must be"),
        (TINY.replace("epochs = 2", "epochs = 0"), (), "epochs must be"),
        (TINY.replace('device = "cpu"', 'device = "auto"'), (), "a sweep fixes its device"),
        (TINY.replace("[0.3, 0.5]", "[0.3, 0.3]"), (), "corruption names 0.3 twice"),
        (TINY.replace('"digits"', '"mnist"'), (), "unknown dataset 'mnist'"),
        (TINY + "[datasets.digits]\nwd = { base = 1e-2 }\n", (), "names weight decays (base); choose one"),
        (TINY, ("--only", "fig9"), "--only fig9:"),
        (TINY, ("--parallel", "0"), "--parallel must be at least 1"),
        # [resources] and the flags that override it: one check, one message, named by the key or the flag
        (TINY + "[resources]\nmem_gb = -5\n", (), "tiny.toml [resources]: mem_gb must be at least 1, got -5"),
        (TINY + "[resources]\ntime_min = 0\n", (), "[resources]: time_min must be at least 1, got 0"),
        (TINY + "[resources]\ngpus_per_job = -2\n", (), "[resources]: gpus_per_job must be at least 0, got -2"),
        (TINY + "[resources]\ncpus_per_job = 0\n", ("--cpus-per-job", "2"), "cpus_per_job must be at least 1"),
        (TINY + '[resources]\npartition = "gpu\\nrm -rf ~"\n', (), "is not a plain name"),
        (TINY, ("--mem", "-5"), "--mem must be at least 1, got -5"),
        (TINY, ("--time", str(2**40)), "--time must be at most 2147483647"),
        (TINY, ("--partition", "gpu;reboot"), "--partition must be a SLURM partition name"),
    ],
)
def test_mistakes_are_one_line_usage_errors_before_any_job(tmp_path, capsys, text, args, message):
    assert cli(tmp_path, str(write(tmp_path, text)), *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda path: path.write_bytes(b"\xff\xfename = 1\n") and path, "is not UTF-8 text (byte 0)"),
        (lambda path: path.mkdir() or path, "is a folder; give a sweep file"),
    ],
)
def test_a_file_that_is_not_a_sweep_file_is_one_usage_error(tmp_path, capsys, make, message):
    assert cli(tmp_path, str(make(tmp_path / "odd.toml"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.slow  # fresh interpreters in other folders: 2 s
def test_sweep_files_are_found_here_first_then_among_the_shipped_ones_by_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository
    for name in ("paper", "paper.toml", "sweeps/paper.toml"):
        assert cli(tmp_path, name, "--dry-run") == 0, capsys.readouterr().err
        assert capsys.readouterr().out.splitlines()[-1].startswith("paper: 48 jobs")
    write(tmp_path, TINY, "paper.toml")  # a file of this folder wins over the shipped one of that name
    assert cli(tmp_path, "paper.toml", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("tiny: ")
    assert cli(tmp_path, "nosuch", "--dry-run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuch here nor a shipped one of that name (embedded, paper)" in err
    assert "sweeps/" not in err


def test_a_missing_launcher_package_names_the_requirements_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert cli(tmp_path, str(write(tmp_path)), "--launcher", "ray") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "requirements-launchers.txt" in err


def test_a_ray_address_that_does_not_answer_is_one_line_naming_it_and_what_to_check(tmp_path, capsys):
    """Said at once (ray.init would retry for minutes): the address, reachability, and where Ray reads the token."""
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        assert cli(tmp_path, str(write(tmp_path)), "--launcher", "ray", "--address", address) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot connect to the Ray cluster at {address} (") and err.count("\n") == 1
        for fact in (
            "RAY_AUTH_TOKEN",
            "RAY_AUTH_TOKEN_PATH",
            "~/.ray/auth_token",
            "ray get-auth-token",
            "RAY_AUTH_MODE",
        ):
            assert fact in err, (fact, err)
    assert not list((tmp_path / "ck").glob("*")), "nothing trained"


def test_the_sbatch_scripts_hold_the_arrays_and_their_dependencies(tmp_path, capsys):
    assert (
        cli(
            tmp_path,
            str(REPO / "sweeps/paper.toml"),
            "--print-sbatch",
            "--partition",
            "gpu",
            "--log-dir",
            str(tmp_path / "logs"),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("#SBATCH --array=") == 7  # the extractions, then one array of chains per dataset
    assert "#SBATCH --array=0-5" in out and out.count("#SBATCH --array=0-6") == 6
    assert out.count("#SBATCH --dependency=") == 6 and "afterok:<extract>_5" in out
    assert "#SBATCH --partition=gpu" in out and "#SBATCH --gpus-per-node=1" in out
    assert not (tmp_path / "logs").exists()


def test_what_goes_into_an_sbatch_script_is_quoted_or_refused(tmp_path, capsys):
    """A folder with spaces, quotes and shell syntax stays data: paths are quoted, and a newline (which
    would end a ``#SBATCH`` line and start a command) in a path is refused. (A sweep file's names are
    plain names before they get here: tests/test_faults_security_inputs.py.)"""
    odd = tmp_path / "it's a $(dir)"
    path = write(tmp_path, TINY.replace('name = "tiny"', 'name = "x.rm-rf_reboot"'))
    assert cli(tmp_path, str(path), "--print-sbatch", "--log-dir", str(odd), "--partition", "a,b") == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert commands and all(line.startswith(("export ", "srun ")) for line in commands), commands
    assert re.search(r"^#SBATCH --job-name=x.rm-rf_reboot-chains$", out, re.MULTILINE), out
    assert "#SBATCH --partition=a,b" in out
    assert all(shlex.split(line) for line in commands)  # each command parses (quotes balanced)
    assert any(str(odd / "%j") in shlex.split(line) for line in commands)  # the folder, one word
    assert cli(tmp_path, str(path), "--print-sbatch", "--log-dir", str(tmp_path / "a\nb")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--log-dir" in err and "control character" in err, err


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_job_states_and_a_relaunch_that_runs_only_what_is_missing_or_damaged(tmp_path, capsys):
    path = write(tmp_path)
    assert cli(tmp_path, str(path)) == 0
    out = capsys.readouterr().out
    assert "[1/1] done    small/digits: sym lr 0.1 wd 0.01" in out and "6 runs trained, 0 reused" in out
    assert "1 done, 0 failed, 0 remaining" in out and len(rows(tmp_path / "results/sym.csv")) == 6
    assert cli(tmp_path, str(path), "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("done ")
    assert cli(tmp_path, str(path)) == 0
    assert "0 job(s) to run on local, 1 already done" in capsys.readouterr().out

    store = tmp_path / "ck"
    entries = sorted(p for p in store.iterdir() if p.is_symlink())
    with open(entries[0] / "best.ckpt", "ab") as stream:  # damage one run
        stream.write(b"x")
    shutil.rmtree(entries[1].resolve())
    os.unlink(entries[1])  # and lose another
    assert cli(tmp_path, str(path), "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("damaged, 4 of 6 done")
    assert cli(tmp_path, str(path)) == 0
    assert "2 runs trained, 4 reused" in capsys.readouterr().out
    assert len(rows(tmp_path / "results/sym.csv")) == 6


class _FakeJob:
    def __init__(self, job_id: str, folder: Path):
        self.job_id = job_id
        self.paths = argparse.Namespace(result_pickle=folder / f"{job_id}_result.pkl")  # never written


class _FakeSlurmExecutor:
    """submitit.AutoExecutor as far as the launcher uses it, recording what it is asked to submit."""

    submitted: list[dict] = []

    def __init__(self, folder, cluster):
        self.folder, self.cluster, self.parameters = Path(folder), cluster, {}

    def update_parameters(self, **parameters):
        self.parameters.update(parameters)

    def map_array(self, function, works):
        array = str(1000 + len(self.submitted))
        self.submitted.append({"cluster": self.cluster, "size": len(works), **self.parameters})
        return [_FakeJob(f"{array}_{index}", self.folder) for index in range(len(works))]


def test_slurm_submits_arrays_with_their_dependencies_and_ctrl_c_cancels_them(tmp_path, capsys, monkeypatch):
    """The real-SLURM path without a scheduler: one extraction array, then a chain array per dataset depending
    on its extraction task; a Ctrl-C while waiting cancels every submitted job with one scancel, then waits
    until squeue no longer shows them (tests/test_slurm_cluster.py runs this on a real cluster)."""
    import submitit

    from sweeping import launch, launch_slurm

    _FakeSlurmExecutor.submitted = []
    monkeypatch.setattr(submitit, "AutoExecutor", _FakeSlurmExecutor)
    monkeypatch.setattr(launch, "require_scheduler", lambda: None)  # the fake executor is the scheduler
    cancelled: list[list[str]] = []
    polls: list[int] = []

    def squeue() -> str:  # every task pending until scancel, then none left
        polls.append(len(cancelled))
        return "" if cancelled else "\n".join(f"{1000 + a}_{t}|PENDING|Dependency" for a in range(7) for t in range(6))

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch_slurm, "_squeue", squeue)
    monkeypatch.setattr(launch_slurm, "_scancel", cancelled.append)
    monkeypatch.setattr(launch_slurm.time, "sleep", interrupt)
    code = cli(
        tmp_path,
        str(REPO / "sweeps/paper.toml"),
        "--only",
        "fig2",
        "--launcher",
        "slurm",
        "--partition",
        "gpu",
        "--log-dir",
        str(tmp_path / "logs"),
    )
    err = capsys.readouterr().err
    assert code == 130 and err.splitlines()[-1] == "interrupted"
    arrays = _FakeSlurmExecutor.submitted
    assert [a["size"] for a in arrays] == [6, 1, 1, 1, 1, 1, 1] and {a["cluster"] for a in arrays} == {"slurm"}
    assert "slurm_dependency" not in arrays[0]
    assert [a["slurm_dependency"] for a in arrays[1:]] == [f"afterok:1000_{i}" for i in range(6)]
    assert all(a["slurm_partition"] == "gpu" and a["gpus_per_node"] == 1 for a in arrays)
    assert all(a["slurm_additional_parameters"] == {"kill-on-invalid-dep": "yes"} for a in arrays)
    ids = [str(1000 + i) for i in range(7)]
    assert cancelled == [ids] and f"cancelling the sweep's SLURM jobs: scancel {' '.join(ids)}" in err
    assert polls == [0, 1]  # once while waiting, once after scancel: nothing left, no waiting


def test_a_submitit_log_record_is_printed_once_while_a_sweep_runs(capfd):
    """submitit gives its logger two handlers of its own (stdout and stderr); while the SLURM launcher runs,
    its records reach only the project's handler, and its handlers are back afterwards."""
    import io
    import logging

    import submitit  # noqa: F401  (configures submitit's logger)

    from sweeping.launch_slurm import _submitit_logs_once

    logger, project = logging.getLogger("submitit"), io.StringIO()
    own = list(logger.handlers)
    handler = logging.StreamHandler(project)
    logging.getLogger().addHandler(handler)
    capfd.readouterr()
    try:
        with _submitit_logs_once():
            logger.warning("the queue was read")
    finally:
        logging.getLogger().removeHandler(handler)
    out, err = capfd.readouterr()
    assert project.getvalue() == "the queue was read\n" and "the queue was read" not in out + err
    assert logger.handlers == own and len(own) == 2
