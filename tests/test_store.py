"""The run store: old-format runs, foreign CSVs, documented commands after variants, concurrency and kill points.

Concurrency and kill tests use the deterministic hooks of utils/testhooks.py (a writer paused at a
named step; a process that SIGKILLs itself after its n-th write), not timing luck.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import plot_softmax_simplex
import report
import train_linear
from training.store import RunStore, State
from utils.testhooks import KILL_AFTER_WRITES, PAUSE

REPO = Path(__file__).resolve().parents[1]
TINY = ["-d", "synthetic", "--epochs", "2", "--ctype", "sym", "--corruption", "0.4"]


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def leftovers(root: Path) -> list[str]:
    """Everything in a store that is not a published run or its files: temporary folders, locks, links."""
    published = {entry.resolve() for entry in RunStore(root).entries() if entry.is_symlink()}
    found = (
        [str(p) for p in (root / ".runs").iterdir() if p.resolve() not in published]
        if (root / ".runs").is_dir()
        else []
    )
    found += [str(p) for p in root.glob(".locks/*")] + [str(p) for p in root.glob(".*.link")]
    found += [str(p) for p in root.parent.rglob(".*.tmp")]
    return found


# -- old format, foreign files ---------------------------------------------------------------------------


def make_old_format(root: Path) -> str:
    """Turn the store's independent-seeding teacher into a run as the previous version wrote it."""
    store = RunStore(root)
    record = next(r for r in store.records() if r.config.seeding == "independent" and r.config.is_teacher)
    old_name = record.name.replace("-planted-", "-r34-").rsplit("-", 1)[0] + "-5e1f00aa"
    shutil.copytree(record.folder, root / old_name)
    (root / record.name).unlink()
    shutil.rmtree(record.folder)
    raw = json.loads((root / old_name / "run.json").read_text())
    config = {key: value for key, value in raw["config"].items() if key not in ("backbone", "seeding")}
    config.update(stage=0, depth=34, weights="default")
    (root / old_name / "run.json").write_text(
        json.dumps({"run": old_name, "stage": "teacher", "config": config, "metrics": raw["metrics"], "teacher": None})
    )
    return old_name


def test_old_format_runs_are_found_marked_and_reused(tmp_path, capsys):
    root = tmp_path / "ck"
    base = [*TINY, "--seed", "0", "--seeding", "independent", "-c", str(root), "--csv", str(tmp_path / "r.csv")]
    assert train_linear.main([*base, "--dist", "0"]) == 0
    old = make_old_format(root)
    lookup = RunStore(root).inspect(root / old)
    assert lookup.state is State.OLD_FORMAT and lookup.record.config.backbone == "planted"
    assert lookup.record.config.seeding == "independent" and lookup.record.config.weights == "none"
    capsys.readouterr()
    assert train_linear.main([*base, "--rounds", "1", "--dry-run"]) == 0
    assert f"done (old format) {old}" in capsys.readouterr().out
    assert train_linear.main([*base, "--rounds", "1"]) == 0  # the students learn from the old teacher
    student = next(r for r in RunStore(root).records() if r.config.stage.slug == "student1")
    assert student.teacher == old and (root / old).is_dir()
    assert train_linear.main([*base, "--dist", "0", "--force"]) == 0
    assert not (root / old).exists(), "a run published again in this format replaces the old one"


def test_a_foreign_or_non_utf8_csv_is_never_overwritten(tmp_path, capsys):
    for content in (b"a,b\n1,2\n", b"\xff\xfe not text"):
        path = tmp_path / "theirs.csv"
        path.write_bytes(content)
        code = train_linear.main([*TINY, "--seed", "0", "--dist", "0", "-c", str(tmp_path / "ck"), "--csv", str(path)])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "is not a results CSV written by this project" in err
        assert path.read_bytes() == content and not (tmp_path / "ck").exists()


@pytest.mark.slow  # four chains and a report: 10 s
def test_documented_commands_after_their_variants(tmp_path, monkeypatch, capsys):
    """The README's variants, then recipe.MD §0's report and simplex commands, in one working folder."""
    monkeypatch.chdir(tmp_path)
    epochs = ["--epochs", "2"]
    assert train_linear.main([*epochs]) == 0
    assert train_linear.main(["--select", "val", *epochs]) == 0
    assert train_linear.main(["--optimizer", "lbfgs"]) == 0
    assert train_linear.main(["-d", "synthetic", *epochs]) == 0
    capsys.readouterr()
    assert report.main(["--dataset", "digits", "synthetic", "--ctype", "cc", "--gain-etas", "0.3", "0.5", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "also present:" in out and "--optimizer lbfgs" in out and "--select val" in out
    assert plot_softmax_simplex.main(["-d", "digits", "--ctype", "cc", "--corruption", "0.7", "--seed", "0"]) == 0


# -- concurrency (real processes, deterministic interleavings) ---------------------------------------------


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "train_linear.py", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def wait_for(predicate, timeout=120.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def paused_markers(folder: Path) -> list[Path]:
    return list(folder.glob("*.paused"))


@pytest.mark.slow
def test_four_identical_chains_at_once_all_succeed(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    args = [
        *TINY,
        "--epochs",
        "50",
        "--seed",
        "0",
        "1",
        "--corruption",
        "0.5",
        "-c",
        str(tmp_path / "ck"),
        "--csv",
        str(tmp_path / "r.csv"),
    ]
    first = start(args, {PAUSE: f"locked:{hooks}"})
    wait_for(lambda: paused_markers(hooks), what="the first writer to hold the teacher's locks")
    others = [start(args) for _ in range(3)]
    time.sleep(1.0)  # the others start, find the locks held and wait (none can train the teacher)
    for marker in paused_markers(hooks):
        marker.unlink()
    results = [process.communicate(timeout=300) for process in [first, *others]]
    assert [process.returncode for process in [first, *others]] == [0, 0, 0, 0], [err for _, err in results]
    assert all("reused" in out for out, _ in results[1:]), "the teacher was trained once, then reused"
    found = rows(tmp_path / "r.csv")
    assert len(found) == 12 and len({row["Run"] for row in found}) == 12
    assert leftovers(tmp_path / "ck") == []


@pytest.mark.slow
def test_chains_with_disjoint_seeds_proceed_in_parallel(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    common = [*TINY, "--rounds", "0", "-c", str(tmp_path / "ck"), "--csv", str(tmp_path / "r.csv")]
    first = start([*common, "--seed", "0"], {PAUSE: f"trained:{hooks}"})
    wait_for(lambda: paused_markers(hooks), what="the first chain to have trained its teacher")
    second = start([*common, "--seed", "1"])
    out, err = second.communicate(timeout=300)  # finishes while the first still holds its locks
    assert second.returncode == 0, err
    for marker in paused_markers(hooks):
        marker.unlink()
    assert first.wait(timeout=300) == 0
    spans = {
        r.config.seed: (r.provenance["started"], r.provenance["finished"]) for r in RunStore(tmp_path / "ck").records()
    }
    assert spans[0][0] < spans[1][0] < spans[1][1] < spans[0][1], "the two chains overlapped in time"


# -- kill points ---------------------------------------------------------------------------------------------


def _chain_in_child(args: list[str], kill_after: int | None) -> None:
    if kill_after is not None:
        os.environ[KILL_AFTER_WRITES] = str(kill_after)
    else:
        os.environ.pop(KILL_AFTER_WRITES, None)
    with open(os.devnull, "w") as sink:
        sys.stdout = sys.stderr = sink
        os._exit(train_linear.main(args))


@pytest.mark.slow
def test_a_chain_killed_after_any_write_resumes_to_the_same_csv(tmp_path):
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["train_linear", "torch", "training.stages", "training.chain", "data"])

    def run(root: Path, kill_after: int | None, *extra: str) -> int:
        args = [*TINY, "--rounds", "1", "--seed", "0", "-c", str(root / "ck"), "--csv", str(root / "r.csv"), *extra]
        process = context.Process(target=_chain_in_child, args=(args, kill_after))
        process.start()
        process.join(timeout=300)
        return process.exitcode

    assert run(tmp_path / "whole", None) == 0
    expected = rows(tmp_path / "whole" / "r.csv")
    kills = 0
    for n in range(1, 200):
        root = tmp_path / f"kill{n}"
        code = run(root, n)
        if code == 0:
            break  # the chain makes fewer than n writes: every write has been a kill point
        assert code == -9, f"kill point {n}: exit {code}"
        kills += 1
        assert run(root, None, "--resume") == 0, f"resume after kill point {n}"
        assert leftovers(root / "ck") == [], f"kill point {n}"
        assert rows(root / "r.csv") == expected, f"kill point {n}: the CSV differs from an uninterrupted run"
        shutil.rmtree(root)
    assert kills >= 30, f"only {kills} kill points: the hook no longer counts the store's writes"
