"""Training stages through the CLI and the library: targets, chain, checkpoints, CSV, selection, errors."""

from __future__ import annotations

import csv
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

import train_linear
from data import load_feature_set
from training import runs
from training.config import TrainConfig
from training.results import COLUMNS, read_rows, upsert_rows
from training.stages import DeviceData, StageOutputs, prepare_head
from tests.conftest import run_script

FAST = ["-d", "synthetic", "--epochs", "4", "--ctype", "sym", "--corruption", "0.4"]


def cli(tmp_path: Path, *args: str) -> int:
    return train_linear.main([*FAST, "-c", str(tmp_path / "ck"), "--results", str(tmp_path / "r.csv"), *args])


def run_folders(tmp_path: Path, pattern: str) -> list[Path]:
    return sorted((tmp_path / "ck").glob(pattern))


def test_chain_end_to_end_writes_runs_csv_and_table(tmp_path, capsys):
    assert cli(tmp_path, "--manualSeed", "0", "1", "--rounds", "2") == 0
    table = capsys.readouterr().out
    for row in ("teacher", "student 1", "student 2", "PLL", "η=0.4 ("):
        assert row in table
    stages = ["teacher", "student1", "student2", "pll"]
    for stage in stages:
        folders = run_folders(tmp_path, f"*-{stage}-*")
        assert len(folders) == 2, stage
        for folder in folders:
            assert runs.is_complete(folder)
            checkpoint = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
            assert checkpoint["weight"].shape == (12, 64) and checkpoint["config"]["epochs"] == 4
            log = list(csv.DictReader(open(folder / "log.csv")))
            assert len(log) == 4 and {"lr", "train_loss", "train_acc_true", "train_acc_noisy", "test_loss",
                                      "test_acc"} <= set(log[0])
            assert float(log[1]["lr"]) == pytest.approx(0.1 * 0.98)
            run = json.loads((folder / "run.json").read_text())
            assert run["provenance"]["versions"]["torch"] and run["provenance"]["wall_time_s"] > 0
    rows = read_rows(tmp_path / "r.csv")
    assert len(rows) == 8 and tuple(rows[0]) == COLUMNS
    assert sorted({row["Distill"] for row in rows}) == ["0", "1", "2", "p"]
    teacher_rows = [row for row in rows if row["Distill"] == "0"]
    for row in teacher_rows:
        run = json.loads((tmp_path / "ck" / row["Run"] / "run.json").read_text())
        log = list(csv.DictReader(open(tmp_path / "ck" / row["Run"] / "log.csv")))
        assert float(row["Test Acc."]) == pytest.approx(max(float(r["test_acc"]) for r in log), abs=1e-3)
        assert float(row["Final Acc."]) == pytest.approx(float(log[-1]["test_acc"]), abs=1e-3)
        assert float(row["Train Acc."]) == pytest.approx(max(float(r["train_acc_true"]) for r in log), abs=1e-3)
        assert float(row["Realized Corruption"]) == pytest.approx(run["metrics"]["realized_corruption"], abs=1e-6)


def _device_data(dataset="synthetic"):
    features = load_feature_set(dataset)
    return DeviceData.load(features, torch.device("cpu"), None)


def _outputs(tmp_path):
    return StageOutputs(tmp_path / "ck", lambda c: tmp_path / "r.csv", lambda stage: f"make {stage}")


def _config(tmp_path, stage, **changes):
    run = json.loads(next(iter(run_folders(tmp_path, "*-teacher-*"))).joinpath("run.json").read_text())
    values = {**run["config"], "stage": stage, **changes}
    return TrainConfig.from_dict(values)


def test_student_targets_are_the_previous_softmax_and_pll_candidates_the_top_two(tmp_path):
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "0") == 0
    data = _device_data()
    teacher = torch.load(run_folders(tmp_path, "*-teacher-*")[0] / "best.ckpt", weights_only=True)["weight"]
    inputs = data.train_features
    student = prepare_head(_config(tmp_path, 1), data, _outputs(tmp_path))
    np.testing.assert_allclose(student.targets.numpy(), torch.softmax(inputs @ teacher.T, -1).numpy(), atol=1e-6)
    pll = prepare_head(_config(tmp_path, "p"), data, _outputs(tmp_path))
    top2 = torch.topk(inputs @ teacher.T, 2, dim=1).indices
    chosen = pll.targets > 0
    assert (chosen.sum(dim=1) == 2).all()
    assert chosen.gather(1, top2).all()
    np.testing.assert_allclose(pll.targets[chosen].numpy(), 0.5)
    torch.testing.assert_close(pll.init, teacher)  # PLL starts from the teacher's weights


def test_dist_two_after_a_chain_loads_round_one(tmp_path):
    assert cli(tmp_path, "--manualSeed", "0", "--rounds", "1") == 0
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "2") == 0
    run = json.loads(run_folders(tmp_path, "*-student2-*")[0].joinpath("run.json").read_text())
    assert run["teacher"] == run_folders(tmp_path, "*-student1-*")[0].name


def test_last_selects_the_last_checkpoint(tmp_path):
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "0") == 0
    folder = run_folders(tmp_path, "*-teacher-*")[0]
    best = torch.load(folder / "best.ckpt", weights_only=True)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    data = _device_data()
    targets = {flag: prepare_head(_config(tmp_path, 1, last=flag), data, _outputs(tmp_path)).targets for flag in (0, 1)}
    for flag, checkpoint in ((0, best), (1, last)):
        expected = torch.softmax(data.train_features @ checkpoint["weight"].T, -1)
        np.testing.assert_allclose(targets[flag].numpy(), expected.numpy(), atol=1e-6)
    assert last["epoch"] == 4 and 1 <= best["epoch"] <= 4


def test_same_seed_gives_identical_rows(tmp_path):
    assert cli(tmp_path / "a", "--manualSeed", "3", "--dist", "0") == 0
    assert cli(tmp_path / "b", "--manualSeed", "3", "--dist", "0") == 0
    a, b = read_rows(tmp_path / "a" / "r.csv"), read_rows(tmp_path / "b" / "r.csv")
    assert a == b and len(a) == 1
    wa = torch.load(next((tmp_path / "a" / "ck").glob("*/last.ckpt")), weights_only=True)["weight"]
    wb = torch.load(next((tmp_path / "b" / "ck").glob("*/last.ckpt")), weights_only=True)["weight"]
    torch.testing.assert_close(wa, wb, rtol=0, atol=0)


def test_rerun_replaces_its_row_and_rebuild_restores_the_csv(tmp_path, capsys):
    assert cli(tmp_path, "--manualSeed", "0", "1", "--dist", "0") == 0
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "0") == 0
    rows = read_rows(tmp_path / "r.csv")
    assert len(rows) == 2
    (tmp_path / "r.csv").unlink()
    assert cli(tmp_path, "--rebuild-results", "--ctype", "sym") == 0
    assert sorted(map(str, read_rows(tmp_path / "r.csv"))) == sorted(map(str, rows))


def _append(args):
    path, index = args
    upsert_rows(Path(path), [{column: f"{index}" for column in COLUMNS}])


@pytest.mark.slow
def test_four_processes_appending_lose_no_row(tmp_path):
    path = tmp_path / "shared.csv"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_append, [(str(path), i) for i in range(40)])
    rows = read_rows(path)
    assert sorted(int(row["Run"]) for row in rows) == list(range(40))
    assert path.read_text().count("Dataset,Depth") == 1


def _one_line_failure(tmp_path, capsys, *args, match: str, status: int = 1):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = cli(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert code == status and len(err.splitlines()) == 1 and match in err, err
    return before


def test_bad_inputs_are_one_line_errors_without_partial_files(tmp_path, capsys):
    _one_line_failure(tmp_path, capsys, "--corruption", "1.5", match="[0, 1]", status=2)
    assert train_linear.main(["-d", "mnist"]) == 2
    assert "choose one of" in capsys.readouterr().err
    before = _one_line_failure(tmp_path, capsys, "--dist", "3", match="--dist 2")
    assert not (tmp_path / "r.csv").exists() and before == []


def test_teacher_with_other_settings_is_refused(tmp_path, capsys):
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "0") == 0
    capsys.readouterr()
    before = _one_line_failure(tmp_path, capsys, "--manualSeed", "0", "--dist", "1", "--wd", "0.5",
                               match="wd 0.01 there vs 0.5 here")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    assert cli(tmp_path, "--manualSeed", "0", "--dist", "0") == 0
    capsys.readouterr()
    checkpoint = run_folders(tmp_path, "*-teacher-*")[0] / "best.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    _one_line_failure(tmp_path, capsys, "--manualSeed", "0", "--dist", "1", match="unreadable")


def test_features_of_another_dimension_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {"train_features": rng.normal(size=(60, 5)).astype(np.float32), "train_labels": np.arange(60) % 3,
              "test_features": rng.normal(size=(9, 5)).astype(np.float32), "test_labels": np.arange(9) % 3}
    np.savez(tmp_path / "f.npz", **arrays)
    common = ["--features", str(tmp_path / "f.npz"), "--epochs", "2", "--ctype", "sym", "--manualSeed", "0",
              "-c", str(tmp_path / "ck"), "--results", str(tmp_path / "r.csv")]
    assert train_linear.main([*common, "--dist", "0"]) == 0
    teacher = run_folders(tmp_path, "f-*-teacher-*")[0]
    checkpoint = torch.load(teacher / "best.ckpt", weights_only=True)
    checkpoint["weight"] = torch.zeros(3, 7)
    torch.save(checkpoint, teacher / "best.ckpt")
    capsys.readouterr()
    assert train_linear.main([*common, "--dist", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shape (3, 7)" in err and "(3, 5)" in err


def test_cli_error_from_a_subprocess_is_one_line(tmp_path):
    result = run_script("train_linear.py", *FAST, "-c", str(tmp_path / "ck"), "--dist", "3")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "no student2 checkpoint" in result.stderr


def test_select_val_never_reads_test_labels(tmp_path):
    features = load_feature_set("synthetic")
    arrays = {"train_features": features.train_features, "train_labels": features.train_labels,
              "test_features": features.test_features, "test_labels": features.test_labels}
    np.savez(tmp_path / "real.npz", **arrays)
    shuffled = np.random.default_rng(0).permutation(features.test_labels)
    np.savez(tmp_path / "scrambled.npz", **{**arrays, "test_labels": shuffled})
    chosen = {}
    for name in ("real", "scrambled"):
        code = train_linear.main(["--features", str(tmp_path / f"{name}.npz"), "--epochs", "6", "--ctype", "sym",
                                  "--corruption", "0.4", "--manualSeed", "0", "--dist", "0", "--select", "val",
                                  "-c", str(tmp_path / name), "--results", str(tmp_path / f"{name}.csv")])
        assert code == 0
        folder = next((tmp_path / name).glob("*-teacher-*"))
        checkpoint = torch.load(folder / "best.ckpt", weights_only=True)
        chosen[name] = (checkpoint["epoch"], checkpoint["weight"])
        _, train_index, val_index = runs.load_labels(folder)
        assert len(val_index) == 120 and len(np.intersect1d(train_index, val_index)) == 0
    assert chosen["real"][0] == chosen["scrambled"][0]
    torch.testing.assert_close(chosen["real"][1], chosen["scrambled"][1], rtol=0, atol=0)
