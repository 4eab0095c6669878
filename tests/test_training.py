"""Training stages through the CLI and the library: targets, chain, the run store, CSV export, selection, errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import train_linear
from data import load_feature_set
from tests.conftest import run_script
from training.results import COLUMNS, LEGACY_COLUMNS
from training.stages import DeviceData, StageContext, prepare_head
from training.store import RunStore, State, sha256
from utils.stages import Stage

FAST = ["-d", "synthetic", "--epochs", "4", "--ctype", "sym", "--corruption", "0.4"]


def cli(tmp_path: Path, *args: str) -> int:
    return train_linear.main([*FAST, "-c", str(tmp_path / "ck"), "--csv", str(tmp_path / "r.csv"), *args])


def records(tmp_path: Path, stage: str | None = None) -> list:
    found = RunStore(tmp_path / "ck").records()
    return [r for r in found if stage is None or r.config.stage.slug == stage]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_chain_end_to_end_publishes_runs_csv_and_table(tmp_path, capsys):
    assert cli(tmp_path, "--seed", "0", "1", "--rounds", "2") == 0
    table = capsys.readouterr().out
    for row in ("teacher", "student 1", "student 2", "PLL", "η=0.4 ("):
        assert row in table
    for stage in ("teacher", "student1", "student2", "pll"):
        found = records(tmp_path, stage)
        assert len(found) == 2, stage
        for record in found:
            assert (tmp_path / "ck" / record.name).is_symlink() and not record.old_format
            checkpoint = torch.load(record.folder / "best.ckpt", map_location="cpu", weights_only=True)
            assert checkpoint["weight"].shape == (12, 64) and checkpoint["config"]["epochs"] == 4
            log = record.history()
            assert len(log) == 4 and {
                "lr",
                "train_loss",
                "train_acc_true",
                "train_acc_noisy",
                "test_loss",
                "test_acc",
            } <= set(log[0])
            assert log[1]["lr"] == pytest.approx(0.1 * 0.98)
            assert record.provenance["versions"]["torch"] and record.provenance["wall_time_s"] > 0
            assert record.provenance["threads"] >= 1
            assert set(record.files) == {"best.ckpt", "last.ckpt", "log.csv", "labels.npz"}
    rows = csv_rows(tmp_path / "r.csv")
    assert len(rows) == 8 and tuple(rows[0]) == COLUMNS and COLUMNS[: len(LEGACY_COLUMNS)] == LEGACY_COLUMNS
    assert sorted({row["Distill"] for row in rows}) == ["0", "1", "2", "p"]
    assert {row["Backbone"] for row in rows} == {"planted"} and {row["Depth"] for row in rows} == {""}
    for record in records(tmp_path, "teacher"):
        row = next(r for r in rows if r["Run"] == record.name)
        log = record.history()
        assert float(row["Test Acc."]) == pytest.approx(max(r["test_acc"] for r in log), abs=1e-3)
        assert float(row["Final Acc."]) == pytest.approx(log[-1]["test_acc"], abs=1e-3)
        assert float(row["Train Acc."]) == pytest.approx(max(r["train_acc_true"] for r in log), abs=1e-3)
        assert float(row["Realized Corruption"]) == pytest.approx(record.metrics["realized_corruption"], abs=1e-6)
    assert not list((tmp_path / "ck").glob(".runs/*/.*")) and not (tmp_path / "ck" / ".locks").exists()


def _context(tmp_path):
    return StageContext(RunStore(tmp_path / "ck"), lambda c: tmp_path / "r.csv", lambda stage: f"make {stage}")


def _config(tmp_path, stage: Stage, **changes):
    return dataclasses.replace(records(tmp_path, "teacher")[0].config, stage=stage, **changes)


def _device_data():
    return DeviceData.load(load_feature_set("synthetic"), torch.device("cpu"), None)


def test_student_targets_are_the_previous_softmax_and_pll_candidates_the_top_two(tmp_path):
    assert cli(tmp_path, "--seed", "0", "--dist", "0") == 0
    data = _device_data()
    teacher = records(tmp_path, "teacher")[0].weights("best")
    inputs = data.train_features
    student = prepare_head(_config(tmp_path, Stage.student(1)), data, _context(tmp_path))
    np.testing.assert_allclose(student.targets.numpy(), torch.softmax(inputs @ teacher.T, -1).numpy(), atol=1e-6)
    pll = prepare_head(_config(tmp_path, Stage.pll()), data, _context(tmp_path))
    top2 = torch.topk(inputs @ teacher.T, 2, dim=1).indices
    chosen = pll.targets > 0
    assert (chosen.sum(dim=1) == 2).all()
    assert chosen.gather(1, top2).all()
    np.testing.assert_allclose(pll.targets[chosen].numpy(), 0.5)
    torch.testing.assert_close(pll.init, teacher)  # PLL starts from the teacher's weights


def test_reference_seeding_gives_every_stage_the_teachers_initial_weights(tmp_path):
    assert cli(tmp_path, "--seed", "0", "--dist", "0") == 0
    data = _device_data()
    context = _context(tmp_path)
    teacher = prepare_head(records(tmp_path, "teacher")[0].config, data, context)
    student = prepare_head(_config(tmp_path, Stage.student(1)), data, context)
    torch.testing.assert_close(student.init, teacher.init, rtol=0, atol=0)
    assert cli(tmp_path, "--seed", "0", "--dist", "0", "--seeding", "independent") == 0
    independent = [
        prepare_head(_config(tmp_path, stage, seeding="independent"), data, context)
        for stage in (Stage.teacher(), Stage.student(1))
    ]
    assert not torch.equal(independent[0].init, independent[1].init)


def test_dist_two_after_a_chain_learns_from_round_one(tmp_path):
    assert cli(tmp_path, "--seed", "0", "--rounds", "1") == 0
    assert cli(tmp_path, "--seed", "0", "--dist", "2") == 0
    assert records(tmp_path, "student2")[0].teacher == records(tmp_path, "student1")[0].name


def test_which_last_selects_the_last_checkpoint(tmp_path):
    assert cli(tmp_path, "--seed", "0", "--dist", "0") == 0
    record = records(tmp_path, "teacher")[0]
    best = torch.load(record.folder / "best.ckpt", weights_only=True)
    last = torch.load(record.folder / "last.ckpt", weights_only=True)
    data = _device_data()
    targets = {
        flag: prepare_head(_config(tmp_path, Stage.student(1), last=flag), data, _context(tmp_path)).targets
        for flag in (0, 1)
    }
    for flag, checkpoint in ((0, best), (1, last)):
        expected = torch.softmax(data.train_features @ checkpoint["weight"].T, -1)
        np.testing.assert_allclose(targets[flag].numpy(), expected.numpy(), atol=1e-6)
    assert last["epoch"] == 4 and 1 <= best["epoch"] <= 4


def test_same_seed_gives_identical_rows(tmp_path):
    assert cli(tmp_path / "a", "--seed", "3", "--dist", "0") == 0
    assert cli(tmp_path / "b", "--seed", "3", "--dist", "0") == 0
    a, b = csv_rows(tmp_path / "a" / "r.csv"), csv_rows(tmp_path / "b" / "r.csv")
    assert a == b and len(a) == 1
    wa = RunStore(tmp_path / "a" / "ck").records()[0].weights("last")
    wb = RunStore(tmp_path / "b" / "ck").records()[0].weights("last")
    torch.testing.assert_close(wa, wb, rtol=0, atol=0)


def test_finished_runs_are_reused_and_force_trains_them_again(tmp_path, capsys):
    assert cli(tmp_path, "--seed", "0", "--dist", "0") == 0
    first = records(tmp_path, "teacher")[0]
    capsys.readouterr()
    assert cli(tmp_path, "--seed", "0", "--dist", "0") == 0
    assert "reused" in capsys.readouterr().out
    assert records(tmp_path, "teacher")[0].folder == first.folder
    assert cli(tmp_path, "--seed", "0", "--dist", "0", "--force") == 0
    again = records(tmp_path, "teacher")[0]
    assert again.folder != first.folder and not first.folder.exists(), "the replaced version is removed"
    assert len(csv_rows(tmp_path / "r.csv")) == 1


def test_rerun_replaces_its_row_and_rebuild_restores_the_csv(tmp_path, capsys):
    assert cli(tmp_path, "--seed", "0", "1", "--dist", "0") == 0
    assert cli(tmp_path, "--seed", "0", "--dist", "0", "--force") == 0
    rows = csv_rows(tmp_path / "r.csv")
    assert len(rows) == 2
    (tmp_path / "r.csv").unlink()
    assert cli(tmp_path, "--rebuild-csv") == 0
    assert sorted(map(str, csv_rows(tmp_path / "r.csv"))) == sorted(map(str, rows))


def _one_line_failure(tmp_path, capsys, *args, match: str, status: int = 1) -> str:
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = cli(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert code == status and len(err.splitlines()) == 1 and match in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "nothing left behind"
    return err


def _suggestion(err: str) -> list[str]:
    return shlex.split(err.split("with: ", 1)[1])[2:]


def test_bad_inputs_are_one_line_errors_without_partial_files(tmp_path, capsys):
    _one_line_failure(tmp_path, capsys, "--corruption", "1.5", match="[0, 1]", status=2)
    assert train_linear.main(["-d", "mnist"]) == 2
    assert "choose one of" in capsys.readouterr().err
    _one_line_failure(tmp_path, capsys, "--dist", "3", match="--dist 2")


def test_each_suggested_command_makes_what_was_missing(tmp_path, capsys):
    """Every error that names a command: run the command it names, then the original succeeds."""
    err = _one_line_failure(tmp_path, capsys, "--seed", "0", "--dist", "2", match="train it first with:")
    assert train_linear.main(_suggestion(err)) == 1  # student 1 needs the teacher: that error names it in turn
    teacher = capsys.readouterr().err
    assert "no teacher run" in teacher and train_linear.main(_suggestion(teacher)) == 0
    assert train_linear.main(_suggestion(err)) == 0 and cli(tmp_path, "--seed", "0", "--dist", "2") == 0
    capsys.readouterr()
    # A teacher trained with other settings: the message names the difference and the command.
    err = _one_line_failure(
        tmp_path, capsys, "--seed", "0", "--dist", "1", "--wd", "0.5", match="wd 0.01 there vs 0.5 here"
    )
    assert train_linear.main(_suggestion(err)) == 0 and cli(tmp_path, "--seed", "0", "--dist", "1", "--wd", "0.5") == 0
    capsys.readouterr()
    # A damaged teacher: named, with the command that trains it again.
    checkpoint = records(tmp_path, "teacher")[0].folder / "best.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    err = _one_line_failure(tmp_path, capsys, "--seed", "0", "--dist", "1", "--force", match="is damaged")
    assert train_linear.main(_suggestion(err)) == 0 and cli(tmp_path, "--seed", "0", "--dist", "1", "--force") == 0


def test_features_of_another_dimension_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {
        "train_features": rng.normal(size=(60, 5)).astype(np.float32),
        "train_labels": np.arange(60) % 3,
        "test_features": rng.normal(size=(9, 5)).astype(np.float32),
        "test_labels": np.arange(9) % 3,
    }
    np.savez(tmp_path / "f.npz", **arrays)
    common = [
        "--features",
        str(tmp_path / "f.npz"),
        "--epochs",
        "2",
        "--ctype",
        "sym",
        "--seed",
        "0",
        "-c",
        str(tmp_path / "ck"),
        "--csv",
        str(tmp_path / "r.csv"),
    ]
    assert train_linear.main([*common, "--dist", "0"]) == 0
    teacher = records(tmp_path, "teacher")[0]
    checkpoint = torch.load(teacher.folder / "best.ckpt", weights_only=True)
    checkpoint["weight"] = torch.zeros(3, 7)
    torch.save(checkpoint, teacher.folder / "best.ckpt")
    raw = json.loads((teacher.folder / "run.json").read_text())  # keep the run verified: update its checksum
    raw["files"]["best.ckpt"] = {
        "size": (teacher.folder / "best.ckpt").stat().st_size,
        "sha256": sha256(teacher.folder / "best.ckpt"),
    }
    (teacher.folder / "run.json").write_text(json.dumps(raw))
    capsys.readouterr()
    assert train_linear.main([*common, "--dist", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shape (3, 7)" in err and "(3, 5)" in err


@pytest.mark.slow  # a fresh interpreter importing torch: 3.5 s
def test_cli_error_from_a_subprocess_is_one_line(tmp_path):
    result = run_script("train_linear.py", *FAST, "-c", str(tmp_path / "ck"), "--dist", "3")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "no student 2 run" in result.stderr


def test_select_val_never_reads_test_labels(tmp_path):
    features = load_feature_set("synthetic")
    arrays = {
        "train_features": features.train_features,
        "train_labels": features.train_labels,
        "test_features": features.test_features,
        "test_labels": features.test_labels,
    }
    np.savez(tmp_path / "real.npz", **arrays)
    shuffled = np.random.default_rng(0).permutation(features.test_labels)
    np.savez(tmp_path / "scrambled.npz", **{**arrays, "test_labels": shuffled})
    chosen = {}
    for name in ("real", "scrambled"):
        code = train_linear.main(
            [
                "--features",
                str(tmp_path / f"{name}.npz"),
                "--epochs",
                "6",
                "--ctype",
                "sym",
                "--corruption",
                "0.4",
                "--seed",
                "0",
                "--dist",
                "0",
                "--select",
                "val",
                "-c",
                str(tmp_path / name),
                "--csv",
                str(tmp_path / f"{name}.csv"),
            ]
        )
        assert code == 0
        record = RunStore(tmp_path / name).records()[0]
        checkpoint = torch.load(record.folder / "best.ckpt", weights_only=True)
        chosen[name] = (checkpoint["epoch"], checkpoint["weight"])
        _, train_index, val_index = record.labels(features.train_labels.shape[0], features.num_classes)
        assert len(val_index) == 120 and len(np.intersect1d(train_index, val_index)) == 0
    assert chosen["real"][0] == chosen["scrambled"][0]
    torch.testing.assert_close(chosen["real"][1], chosen["scrambled"][1], rtol=0, atol=0)


def test_dry_run_lists_states_and_writes_nothing(tmp_path, capsys):
    assert cli(tmp_path, "--seed", "0", "--rounds", "1") == 0
    record = records(tmp_path, "student1")[0]
    (record.folder / "log.csv").write_text("damaged\n")
    snapshot = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    capsys.readouterr()
    assert cli(tmp_path, "--seed", "0", "1", "--rounds", "1", "--dry-run") == 0
    listing = capsys.readouterr().out
    assert f"damaged           {record.name}  (log.csv has" in listing
    assert "synthetic: 2 of 6 runs done, 4 to run" in listing
    assert (
        sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()) == snapshot
    )
    assert RunStore(tmp_path / "ck").find(record.config).state is State.DAMAGED
