"""Fault suite of ``train_linear.py``: bad values, malformed feature files, damaged runs and CSVs, refusals by the
system and colliding paths each end in one ``error:`` line with nothing written or changed; Ctrl-C and SIGTERM
while modules load end in one word (slow tier: subprocesses)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train_linear
from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal, tmpfs
from training.store import RunStore, sha256

SCRIPT = "train_linear"
ROOT = Path(__file__).resolve().parents[1]
TINY = ["-d", "synthetic", "--epochs", "2", "--ctype", "sym", "--corruption", "0.4", "--seed", "0"]
STORE = ["-c", "ck", "--csv", "r.csv"]


def case(kind: str, argv: list[str], pattern: str, status: int = 1, **extra) -> Case:
    return Case(SCRIPT, kind, argv, pattern, status, **extra)


# -- values refused before any work ------------------------------------------------------------------

VALUES = [
    (["--lr", "nan"], r"--lr must be a finite number"),
    (["--lr", "inf"], r"--lr must be a finite number"),
    (["--lr", "0"], r"--lr must be positive"),
    (["--lr", "-0.1"], r"--lr must be positive"),
    (["--wd", "nan"], r"--wd must be a finite number"),
    (["--wd", "-1"], r"--wd must be 0 or more"),
    (["--gamma", "-1"], r"--gamma must lie in \(0, 1\]"),
    (["--gamma", "0"], r"--gamma must lie in \(0, 1\]"),
    (["--gamma", "nan"], r"--gamma must be a finite"),
    (["--momentum", "2"], r"--momentum must lie in \[0, 1\)"),
    (["--momentum", "1"], r"--momentum must lie in \[0, 1\)"),
    (["--momentum", "nan"], r"--momentum must be a finite"),
    (["--epochs", "0"], r"--epochs must be at least 1"),
    (["--epochs", str(10**20)], r"--epochs must be at most"),
    (["--train-batch", "0"], r"--train-batch must be at least 1"),
    (["--test-batch", "-5"], r"--test-batch must be"),
    (["--corruption", "1.5"], r"--corruption must lie in \[0, 1\]"),
    (["--corruption", "nan"], r"--corruption must be a finite"),
    (["--q", "0"], r"--q must lie in \(0, 1\]"),
    (["--q", "2"], r"--q must lie in \(0, 1\]"),
    (["--val-fraction", "1"], r"--val-fraction must lie in \(0, 1\)"),
    (["--pll-k", "0"], r"--pll-k must be at least 1"),
    (["--pll-k", "99"], r"--pll-k must lie in 1\.\.12 \(the number of classes\)"),
    (["--dist", "-1"], r"--dist must be at least 0"),
    (["--dist", "1", "--partial"], r"either --dist T or --partial"),
    (["--rounds", "-1"], r"--rounds must be at least 0"),
    (["--threads", "-1"], r"--threads must be at least 0"),
    (["--seed", "0", "0"], r"--seed names 0 twice"),
    (["--corruption", "0.5", "0.5"], r"--corruption names 0.5 twice"),
    (["--optimizer", "lbfgs", "--wd", "0"], r"--optimizer lbfgs needs --wd > 0"),
    (["-d", "nosuch"], r"unknown dataset 'nosuch'"),
    (["--seed", "-1"], r"a seed lies in \[0, 2\*\*32\)"),
    (["--seed", str(2**32)], r"a seed lies in \[0, 2\*\*32\)"),
    (["--partial", "maybe"], r"expected True or False"),
    (["--part"], r"unrecognized arguments: --part"),
    (["--select", "best"], r"invalid choice: 'best'"),
]
CASES = [case("value", [*TINY, *STORE, *argv], pattern, 2, name=" ".join(argv)) for argv, pattern in VALUES]


# -- malformed feature files ----------------------------------------------------------------------------


def _features(**changes):
    rng = np.random.default_rng(0)
    arrays = {
        "train_features": rng.normal(size=(30, 4)).astype(np.float32),
        "train_labels": np.arange(30) % 3,
        "test_features": rng.normal(size=(9, 4)).astype(np.float32),
        "test_labels": np.arange(9) % 3,
    }
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def _npz(name: str, **changes):
    def setup(sandbox: Path) -> None:
        np.savez(sandbox / name, **_features(**changes))

    return setup


def _raw(name: str, content: bytes):
    def setup(sandbox: Path) -> None:
        (sandbox / name).write_bytes(content)

    return setup


FILE_CASES = [
    ("missing.npz", None, r"--features .*missing\.npz does not exist", 2),
    ("empty.npz", _raw("empty.npz", b""), r"empty\.npz", 1),
    ("text.npz", _raw("text.npz", b"not a zip archive at all"), r"text\.npz", 1),
    ("nokey.npz", _npz("nokey.npz", test_labels=None), r"lacks key\(s\) test_labels", 1),
    ("nan.npz", _npz("nan.npz", train_features=np.full((30, 4), np.nan, np.float32)), r"NaN or infinite", 1),
    ("shape.npz", _npz("shape.npz", test_features=np.zeros((9, 5), np.float32)), r"dimension 4 but test_features 5", 1),
    (
        "rows.npz",
        _npz("rows.npz", train_labels=np.arange(29) % 3),
        r"train_labels has 29 labels but the features have 30 rows",
        1,
    ),
    ("labels.npz", _npz("labels.npz", train_labels=np.arange(30) % 3 - 1), r"train_labels hold -1, outside 0\.\.2", 1),
]
CASES += [
    case(
        "file",
        ["--features", name, "--epochs", "2", "--ctype", "sym", *STORE],
        pattern,
        status,
        setup=setup,
        name=f"features {name}",
    )
    for name, setup, pattern, status in FILE_CASES
]


# -- damaged runs and CSVs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory) -> Path:
    """A store with a finished teacher (copied into each sandbox that needs one)."""
    root = tmp_path_factory.mktemp("trained")
    assert train_linear.main([*TINY, "-c", str(root / "ck"), "--csv", str(root / "r.csv"), "--dist", "0"]) == 0
    return root


TRAINED: dict[str, Path] = {}


def _with_teacher(change=None):
    def setup(sandbox: Path) -> None:
        shutil.copytree(TRAINED["root"] / "ck", sandbox / "ck", symlinks=True)
        shutil.copy(TRAINED["root"] / "r.csv", sandbox / "r.csv")
        if change is not None:
            change(RunStore(sandbox / "ck").records()[0])

    return setup


def _rewrite_checkpoint(record, weights) -> None:
    checkpoint = torch.load(record.folder / "best.ckpt", weights_only=True)
    checkpoint["weight"] = weights
    torch.save(checkpoint, record.folder / "best.ckpt")
    _recheck(record, "best.ckpt")


def _recheck(record, name: str) -> None:
    """Update run.json's checksum, so that the run verifies and the content itself is what is wrong."""
    raw = json.loads((record.folder / "run.json").read_text())
    raw["files"][name] = {"size": (record.folder / name).stat().st_size, "sha256": sha256(record.folder / name)}
    (record.folder / "run.json").write_text(json.dumps(raw))


def _labels(record, noisy=None, train=None) -> None:
    with np.load(record.folder / "labels.npz") as archive:
        arrays = dict(archive)
    if noisy is not None:
        arrays["noisy"] = noisy(arrays["noisy"])
    if train is not None:
        arrays["train_index"] = train(arrays["train_index"])
    np.savez(record.folder / "labels.npz", **arrays)
    _recheck(record, "labels.npz")


def _run_json(record, change) -> None:
    raw = json.loads((record.folder / "run.json").read_text())
    change(raw)
    (record.folder / "run.json").write_text(json.dumps(raw))


def _delete_config_field(raw):
    del raw["config"]["lr"]


STATE = [
    (
        "truncated teacher checkpoint",
        lambda r: (r.folder / "best.ckpt").write_bytes(b"cut"),
        r"teacher run .* is damaged \(best\.ckpt has 3 bytes",
    ),
    (
        "NaN teacher weights",
        lambda r: _rewrite_checkpoint(r, torch.full((12, 64), float("nan"))),
        r"best\.ckpt does not hold finite",
    ),
    ("teacher weights of another shape", lambda r: _rewrite_checkpoint(r, torch.zeros(3, 7)), r"shape \(3, 7\)"),
    (
        "noisy labels out of range",
        lambda r: _labels(r, noisy=lambda a: a + 12),
        r"labels\.npz: noisy must be integers in \[0, 12\)",
    ),
    (
        "negative train indices",
        lambda r: _labels(r, train=lambda a: a - 5),
        r"train_index must be integers in \[0, 1200\)",
    ),
    (
        "run.json lacks a config field",
        lambda r: _run_json(r, _delete_config_field),
        r"is damaged \(its config lacks lr\)",
    ),
    (
        "truncated run.json",
        lambda r: (r.folder / "run.json").write_text('{"format": 2, "con'),
        r"is damaged \(its run\.json is unreadable",
    ),
    ("run.json of another format", lambda r: _run_json(r, lambda raw: raw.update(format=9)), r"has format 9"),
]
CASES += [
    case("state", [*TINY, *STORE, "--dist", "1"], pattern, setup=_with_teacher(change), name=name)
    for name, change, pattern in STATE
]
CASES += [
    case(
        "state",
        [*TINY, *STORE, "--dist", "0"],
        r"r\.csv is not a results CSV written by this project \(not UTF-8",
        setup=_raw("r.csv", b"\xff\xfe\x00binary"),
        name="non-UTF-8 results CSV",
    ),
    case(
        "state",
        [*TINY, *STORE, "--dist", "0"],
        r"r\.csv is not a results CSV written by this project \(its header",
        setup=_raw("r.csv", b"name,score\nx,1\n"),
        name="foreign results CSV",
    ),
    case(
        "state",
        [*TINY, *STORE, "--rebuild-csv"],
        r"r\.csv is not a results CSV written by this project",
        setup=_raw("r.csv", b"name,score\nx,1\n"),
        name="rebuild over a foreign CSV",
    ),
]


# -- the system says no, and paths that collide ----------------------------------------------------------------

for code in ("EACCES", "EROFS", "ENOSPC"):
    CASES.append(
        case(
            "os",
            [*TINY, *STORE],
            rf"-c/--checkpoint: cannot write to .*ck: .*{OS_PATTERNS[code]}",
            fault=refusal("ck", OS_CODES[code]),
            name=f"store {code}",
        )
    )
    CASES.append(
        case(
            "os",
            [*TINY, "-c", "ck", "--csv", "out/r.csv"],
            rf"--csv: cannot write to .*out: .*{OS_PATTERNS[code]}",
            fault=refusal("out", OS_CODES[code]),
            name=f"csv folder {code}",
        )
    )
CASES.append(
    case(
        "os",
        [*TINY, *STORE, "--dist", "1"],
        r"cannot write to .*ck: read-only file system",
        setup=_with_teacher(),
        fault=refusal("ck", errno.EROFS),
        name="read-only store with a teacher",
    )
)
CASES += [
    case(
        "collision",
        [*TINY, "-c", "taken", "--csv", "r.csv"],
        r"-c/--checkpoint .*taken is a file, not a folder",
        setup=_raw("taken", b"x"),
        name="store is a file",
    ),
    case(
        "collision",
        [*TINY, "-c", "ck", "--csv", "folder"],
        r"--csv .*folder is a folder, not a file",
        setup=lambda sandbox: (sandbox / "folder").mkdir(),
        name="csv is a folder",
    ),
    case(
        "collision",
        [*TINY, "-c", "ck", "--csv", "file/r.csv"],
        r"--csv file/r\.csv: file is a file, not a folder",
        setup=_raw("file", b"x"),
        name="csv below a file",
    ),
]


@pytest.mark.parametrize("fault", CASES, ids=[c.id for c in CASES])
def test_fault(fault, tmp_path, capsys, trained_store):
    TRAINED["root"] = trained_store
    check_case(fault, tmp_path, capsys)


def test_enough_cases_of_every_kind():
    kinds = {kind: sum(c.kind == kind for c in CASES) for kind in ("value", "file", "state", "os", "collision")}
    assert len(CASES) >= 12 and all(count >= 3 for count in kinds.values()), kinds


# -- signals while modules load (subprocesses) ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("module", ["numpy", "torch", "training.stages"])
@pytest.mark.parametrize(
    "signal_name, status, line", [("SIGINT", 130, "interrupted\n"), ("SIGTERM", 143, "terminated\n")]
)
def test_signal_while_modules_load(tmp_path, module, signal_name, status, line):
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": f"{module}:{signal_name}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train_linear.py"), *TINY, "-c", "ck", "--csv", "r.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert (result.returncode, result.stderr) == (status, line)
    assert list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.slow
def test_sigterm_while_training_leaves_no_partial_run(tmp_path):
    """A scheduler's SIGTERM in the middle of a stage: exit 143, no published or temporary run, the CSV untouched."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train_linear.py"), *TINY, "--epochs", "400", "-c", "ck", "--csv", "r.csv"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("ck/.runs/*/log.csv")):  # it is training
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.terminate()
    out, err = process.communicate(timeout=120)
    assert (process.returncode, err.splitlines()[-1]) == (143, "terminated")
    assert (
        not list(tmp_path.glob("ck/*")) and not list(tmp_path.glob("ck/.runs/*")) and not (tmp_path / "r.csv").exists()
    )


# -- slow tier: real mounts (tmpfs) where mounting is permitted ------------------------------------------------


@pytest.mark.slow
def test_a_real_full_disk_mid_chain_keeps_finished_runs_and_leaves_no_partial_one(tmp_path):
    """A 64 KiB store fills up after a few runs: one line naming the file, every published run verified, its CSV
    row present, no temporary folder, lock or stray file; the rerun on a roomy copy finishes the chain."""
    with tmpfs(tmp_path / "full", "size=64k") as disk:
        argv = [*TINY, "-c", str(disk / "ck"), "--csv", str(tmp_path / "r.csv")]
        result = subprocess.run(
            [sys.executable, str(ROOT / "train_linear.py"), *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        last = result.stderr.splitlines()[-1]
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert last.startswith("error: cannot use ") and str(disk / "ck") in last and "(ENOSPC)" in last
        store = RunStore(disk / "ck")
        published = list(store.records())
        assert published, "the runs that fitted were kept"
        assert all(store.inspect(disk / "ck" / record.name).state.finished for record in published)
        assert sorted(p.name for p in (disk / "ck").iterdir()) == sorted([".runs", *(r.name for r in published)])
        assert len(list((disk / "ck" / ".runs").iterdir())) == len(published), "no temporary run folder left"
        rows = (tmp_path / "r.csv").read_text().splitlines()
        assert len(rows) == 1 + len(published)
        roomy = tmp_path / "roomy"
        shutil.copytree(disk / "ck", roomy, symlinks=True)
    kept = {record.name: (roomy / record.name / "run.json").read_bytes() for record in published}
    again = subprocess.run(
        [sys.executable, str(ROOT / "train_linear.py"), *TINY, "-c", str(roomy), "--csv", str(tmp_path / "r.csv")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert all((roomy / name / "run.json").read_bytes() == content for name, content in kept.items()), "reused"
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + 6


@pytest.mark.slow
def test_a_real_read_only_store_is_refused_before_any_work(tmp_path):
    with tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "train_linear.py"),
                *TINY,
                "-c",
                str(disk / "ck"),
                "--csv",
                str(tmp_path / "r.csv"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert (result.returncode, result.stdout) == (1, "")
        assert (
            result.stderr == f"error: -c/--checkpoint: cannot write to {disk / 'ck'}: read-only file system "
            "(EROFS); choose a writable folder\n"
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"] and not list(disk.iterdir())
