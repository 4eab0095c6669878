"""Fault suites of the scripts that read the run store: ``report.py``, ``plot_softmax_simplex.py`` and ``runs.py``.

Bad values, damaged runs and results files, refusals by the system and colliding paths each end in one
``error:`` line with nothing written or changed; Ctrl-C and SIGTERM while modules load end in one word
(slow tier: subprocesses); ``runs.py clean`` on a real read-only mount (slow tier, where mounting works).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fault_harness import OS_CODES, OS_PATTERNS, Case, check_case, refusal, tmpfs
from tests.store_factory import publish, toy_config
from training.store import RunStore, sha256

ROOT = Path(__file__).resolve().parents[1]


def toy_store(sandbox: Path) -> None:
    """A small finished chain of a 3-class, 2-dimensional toy dataset in ``sandbox/ck``."""
    for eta in (0.5, 0.7):
        for seed in (0, 1):
            teacher = publish(sandbox / "ck", toy_config(eta=eta, stage="0", seed=seed), 70.0 + seed)
            publish(sandbox / "ck", toy_config(eta=eta, stage="1", seed=seed), 71.0 + seed, teacher=teacher.name)
            publish(sandbox / "ck", toy_config(eta=eta, stage="p", seed=seed), 72.0 + seed, teacher=teacher.name)


def damaged(change):
    def setup(sandbox: Path) -> None:
        toy_store(sandbox)
        change(next(r for r in RunStore(sandbox / "ck").records() if r.config.stage.is_pll))

    return setup


def _nan_weights(record) -> None:
    checkpoint = torch.load(record.folder / "best.ckpt", weights_only=True)
    checkpoint["weight"] = torch.full_like(checkpoint["weight"], float("nan"))
    torch.save(checkpoint, record.folder / "best.ckpt")
    raw = json.loads((record.folder / "run.json").read_text())
    raw["files"]["best.ckpt"] = {
        "size": (record.folder / "best.ckpt").stat().st_size,
        "sha256": sha256(record.folder / "best.ckpt"),
    }
    (record.folder / "run.json").write_text(json.dumps(raw))


def raw_file(name: str, content: bytes, store: bool = True):
    def setup(sandbox: Path) -> None:
        if store:
            toy_store(sandbox)
        (sandbox / name).parent.mkdir(parents=True, exist_ok=True)
        (sandbox / name).write_bytes(content)

    return setup


# -- report.py ----------------------------------------------------------------------------------------------


def report_case(kind, argv, pattern, status=1, setup=toy_store, **extra) -> Case:
    return Case("report", kind, ["-c", "ck", "--out", "reports", *argv], pattern, status, setup=setup, **extra)


REPORT = [
    report_case("value", ["--columns", "1.5"], r"--columns must lie in \[0, 1\]", 2),
    report_case("value", ["--columns", "nan"], r"--columns must be a finite number", 2),
    report_case("value", ["--gain-etas", "0.5", "0.5"], r"--gain-etas: a value is given twice", 2),
    report_case("value", ["--wd", "1", "2"], r"--wd: more than one plain value", 2),
    report_case("value", ["--lr", "toy=fast"], r"--lr: expected a number or DATASET=NUMBER", 2),
    report_case("value", ["--name", "../x"], r"--name '\.\./x': use letters", 2),
    report_case("value", ["--name", ".hidden"], r"--name '\.hidden'", 2),
    report_case("value", ["--metric", "best"], r"invalid choice: 'best'", 2),
    report_case("value", ["--sel", "test"], r"unrecognized arguments: --sel", 2),
    report_case("value", ["--which", "2"], r"invalid choice: '2'", 2),
    report_case("value", ["--epochs", "0"], r"--epochs must be at least 1", 2),
    report_case("value", ["--momentum", "nan"], r"--momentum must be a finite number", 2),
    report_case("value", ["--dataset", "nosuch"], r"unknown dataset 'nosuch'; choose one of", 2),
    report_case("value", ["--wd", "nosuch=1"], r"--wd names nosuch, which is not among the datasets", 2),
    Case(
        "report",
        "value",
        ["-c", "nowhere", "--out", "reports"],
        r"-c/--checkpoint nowhere is not a run store",
        2,
        name="no store",
    ),
    report_case("state", ["--dataset", "cifar100"], r"no runs of dataset cifar100 in the store"),
    report_case("state", ["--ctype", "sym"], r"toy: no runs with --ctype sym \(its runs have --ctype cc\)"),
    report_case(
        "state",
        [],
        r"run toy-identity-cc-eta0\.5-seed0-pll-\w+ in ck is damaged \(best\.ckpt has 3 bytes",
        setup=damaged(lambda r: (r.folder / "best.ckpt").write_bytes(b"cut")),
        name="damaged checkpoint",
    ),
    report_case(
        "state",
        [],
        r"is damaged \(its run\.json is unreadable",
        setup=damaged(lambda r: (r.folder / "run.json").write_text("{")),
        name="truncated run.json",
    ),
    report_case(
        "state",
        ["--results", "theirs.csv"],
        r"theirs\.csv is not a results CSV written by this project",
        setup=raw_file("theirs.csv", b"a,b\n1,2\n"),
        name="foreign --results",
    ),
    report_case(
        "state",
        ["--results", "bin.csv"],
        r"bin\.csv is not a results CSV .*not UTF-8",
        setup=raw_file("bin.csv", b"\xff\xfe\x00"),
        name="binary --results",
    ),
    report_case("value", ["--results", "none.csv"], r"results file none\.csv not found", 2),
    report_case(
        "collision",
        [],
        r"--out .*reports is a file, not a folder",
        setup=raw_file("reports", b"x"),
        name="--out is a file",
    ),
    Case(
        "report",
        "collision",
        ["-c", "ck", "--out", "file/reports"],
        r"--out: cannot write to .*file",
        setup=raw_file("file", b"x"),
        name="--out below a file",
    ),
]
for code in ("EACCES", "EROFS", "ENOSPC"):
    REPORT.append(
        report_case(
            "os",
            [],
            rf"--out: cannot write to .*reports: .*{OS_PATTERNS[code]}",
            fault=refusal("reports", OS_CODES[code]),
            name=f"--out {code}",
        )
    )


# -- plot_softmax_simplex.py ------------------------------------------------------------------------------------


def features_file(sandbox: Path, dim: int = 3) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        sandbox / "toy.npz",
        train_features=rng.normal(size=(12, dim)).astype(np.float32),
        train_labels=np.arange(12) % 3,
        test_features=rng.normal(size=(6, dim)).astype(np.float32),
        test_labels=np.arange(6) % 3,
    )


def simplex_store(change=None, dim: int = 3):
    """A store whose runs were trained on toy.npz's features (weights 3 × 3), optionally damaged by ``change``."""

    def setup(sandbox: Path) -> None:
        from data import load_feature_file

        features_file(sandbox, dim)
        source = load_feature_file(sandbox / "toy.npz").source
        common = dict(dataset="toy", feature_source=source, backbone="file", ctype="cc")
        teacher = publish(sandbox / "ck", toy_config(stage="0", **common), 70.0, weights=torch.ones(3, 3))
        publish(sandbox / "ck", toy_config(stage="1", **common), 71.0, teacher=teacher.name, weights=torch.ones(3, 3))
        if change is not None:
            change(next(r for r in RunStore(sandbox / "ck").records() if r.config.stage.is_teacher))

    return setup


def simplex_case(kind, argv, pattern, status=1, setup=None, **extra) -> Case:
    return Case(
        "plot_softmax_simplex",
        kind,
        ["--features", "toy.npz", "-c", "ck", "--out", "figs", *argv],
        pattern,
        status,
        setup=setup or simplex_store(),
        **extra,
    )


SIMPLEX = [
    simplex_case("value", ["--classes", "0", "nosuch"], r"unknown class 'nosuch'", 2),
    simplex_case("value", ["--classes", "0", "0"], r"--classes names a class twice", 2),
    simplex_case("value", ["--corruption", "1.5"], r"--corruption must lie in \[0, 1\]", 2),
    simplex_case("value", ["--seed", "-1"], r"a seed lies in \[0, 2\*\*32\)", 2),
    simplex_case("value", ["--which", "2"], r"invalid choice: '2'", 2),
    simplex_case("value", ["--lr", "nan"], r"--lr must be a finite number", 2),
    simplex_case("value", ["--epochs", "0"], r"--epochs must be at least 1", 2),
    simplex_case("value", ["--cla", "0", "1"], r"unrecognized arguments: --cla", 2),
    simplex_case(
        "state", ["--corruption", "0.9"], r"no teacher run for η=0\.9 .*train the chain with: python3 train_linear\.py"
    ),
    simplex_case("state", ["--seed", "5"], r"no teacher run for these features, ctype cc and seed 5"),
    simplex_case(
        "state",
        [],
        r"teacher-.*/best\.ckpt does not hold finite",
        setup=simplex_store(_nan_weights),
        name="NaN weights",
    ),
    simplex_case(
        "state",
        [],
        r"is damaged \(best\.ckpt has 3 bytes",
        setup=simplex_store(lambda r: (r.folder / "best.ckpt").write_bytes(b"cut")),
        name="damaged run",
    ),
    Case(
        "plot_softmax_simplex",
        "state",
        ["--features", "toy.npz", "--runs", "ck", "--out", "figs"],
        r"ck is not a run folder \(it has no run\.json\)",
        setup=simplex_store(),
        name="--runs a store, not a run",
    ),
    simplex_case(
        "file",
        [],
        r"features file .*toy\.npz",
        setup=lambda sandbox: (simplex_store()(sandbox), (sandbox / "toy.npz").write_bytes(b"junk")),
        name="features file damaged",
    ),
    simplex_case(
        "collision",
        [],
        r"--out .*figs is a file, not a folder",
        setup=lambda sandbox: (simplex_store()(sandbox), (sandbox / "figs").write_text("x")),
        name="--out is a file",
    ),
]
for code in ("EACCES", "EROFS", "ENOSPC"):
    SIMPLEX.append(
        simplex_case(
            "os",
            [],
            rf"--out: cannot write to .*figs: .*{OS_PATTERNS[code]}",
            fault=refusal("figs", OS_CODES[code]),
            name=f"--out {code}",
        )
    )


# -- runs.py ------------------------------------------------------------------------------------------------------


def runs_case(kind, argv, pattern, status=1, setup=toy_store, **extra) -> Case:
    return Case("runs", kind, argv, pattern, status, setup=setup, **extra)


RUNS = [
    runs_case("value", ["list", "-c", "nowhere"], r"-c/--checkpoint nowhere is not a run store", 2),
    runs_case(
        "value", ["list"], r"-c/--checkpoint checkpoints is not a run store", 2, name="no store in ./checkpoints"
    ),
    runs_case("value", ["list", "-c", "ck", "-d"], r"argument -d/--dataset: expected at least one argument", 2),
    runs_case("value", ["show", "nosuch", "-c", "ck"], r"no run 'nosuch' in ck", 2),
    runs_case("value", ["show", ".runs", "-c", "ck"], r"no run '\.runs' in ck", 2),
    runs_case("value", ["list", "-c", "ck", "--state", "broken"], r"invalid choice: 'broken'", 2),
    runs_case("value", ["prune", "-c", "ck"], r"invalid choice: 'prune'", 2),
    runs_case("value", ["list", "-c", "ck", "--sta", "damaged"], r"unrecognized arguments: --sta", 2),
    runs_case("value", ["clean", "-c", "ck", "--damaged", "yes"], r"unrecognized arguments: yes", 2),
    runs_case(
        "collision",
        ["list", "-c", "file"],
        r"-c/--checkpoint file is not a run store",
        2,
        setup=raw_file("file", b"x", store=False),
        name="store is a file",
    ),
]
for code in ("EACCES", "EROFS"):
    RUNS.append(
        runs_case(
            "os",
            ["clean", "-c", "ck", "--damaged"],
            rf"cannot use .*ck/.*: {OS_PATTERNS[code]}",
            setup=damaged(lambda r: (r.folder / "run.json").write_text("{")),
            fault=refusal("ck", OS_CODES[code]),
            name=f"clean --damaged {code}",
        )
    )
RUNS.append(
    runs_case(
        "os",
        ["clean", "-c", "ck"],
        r"cannot use .*\.runs/.*: .*permission denied",
        setup=lambda sandbox: (toy_store(sandbox), (sandbox / "ck" / ".runs" / "x.host-1-dead").mkdir()),
        fault=refusal("ck", OS_CODES["EACCES"]),
        name="clean a leftover EACCES",
    )
)

CASES = REPORT + SIMPLEX + RUNS


@pytest.mark.parametrize("fault", CASES, ids=[f"{c.script}: {c.id}" for c in CASES])
def test_fault(fault, tmp_path, capsys):
    check_case(fault, tmp_path, capsys)


def test_enough_cases_per_script():
    for script in ("report", "plot_softmax_simplex", "runs"):
        assert sum(c.script == script for c in CASES) >= 12, script


# -- slow tier: signals while modules load; a real read-only mount ----------------------------------------------

SCRIPTS = {"report.py": ["-c", "ck"], "plot_softmax_simplex.py": ["-c", "ck"], "runs.py": ["list", "-c", "ck"]}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize(
    "signal_name, status, line", [("SIGINT", 130, "interrupted\n"), ("SIGTERM", 143, "terminated\n")]
)
def test_signal_while_modules_load(tmp_path, script, signal_name, status, line):
    (tmp_path / "ck").mkdir()
    module = "training.store" if script == "runs.py" else "numpy"
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": f"{module}:{signal_name}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *SCRIPTS[script]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert (result.returncode, result.stderr) == (status, line)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"] and not list((tmp_path / "ck").iterdir())


@pytest.mark.slow
def test_clean_on_a_real_read_only_store(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "size=8m") as mount:
        toy_store(mount)
        (mount / "ck" / ".runs" / "left.host-1-dead").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        import runs

        assert runs.main(["clean", "-c", str(mount / "ck")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "read-only file system (EROFS)" in err
        assert (mount / "ck" / ".runs" / "left.host-1-dead").is_dir()


@pytest.mark.slow
def test_report_on_a_full_disk_writes_nothing(tmp_path, capsys):
    with tmpfs(tmp_path / "full", "size=64k") as mount:
        toy_store(tmp_path)
        (mount / "filler").write_bytes(b"x" * 52 * 1024)  # leaves 12 KiB: the tables fit, the figures do not
        import report

        code = report.main(["-c", str(tmp_path / "ck"), "--out", str(mount / "reports")])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "no space left on the device" in err
        assert sorted(p.name for p in mount.rglob("*")) == ["filler"], "no table without its figures"
