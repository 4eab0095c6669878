"""The grid mode: resuming skips finished runs and redoes interrupted ones; stacked heads equal separate runs."""

from __future__ import annotations

import csv

import numpy as np
import torch

import train_linear
from training.results import read_rows

COMMON = ["-d", "synthetic", "--epochs", "3", "--ctype", "sym", "--rounds", "1"]


def cli(root, *args: str) -> int:
    return train_linear.main([*COMMON, "-c", str(root / "ck"), "--results", str(root / "r.csv"), *args])


def test_resume_skips_finished_runs_and_redoes_an_interrupted_one(tmp_path, capsys):
    grid = ["--manualSeed", "0", "1", "--corruption", "0.4"]
    assert cli(tmp_path, *grid) == 0
    folders = sorted((tmp_path / "ck").iterdir())
    assert len(folders) == 6  # 2 seeds × (teacher, student 1, PLL)
    interrupted = next(f for f in folders if "seed1-student1" in f.name)
    (interrupted / "run.json").unlink()
    lost_row = next(f for f in folders if "seed0-teacher" in f.name)
    rows = [row for row in read_rows(tmp_path / "r.csv") if row["Run"] not in (lost_row.name, interrupted.name)]
    with open(tmp_path / "r.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    assert cli(tmp_path, *grid, "--dry-run") == 0
    listing = capsys.readouterr().out
    assert f"to run  {interrupted.name}" in listing and "5 finished, 1 to run" in listing
    assert len(read_rows(tmp_path / "r.csv")) == 4, "a dry run writes nothing"
    stamps = {f.name: (f / "best.ckpt").stat().st_mtime_ns for f in folders}
    assert cli(tmp_path, *grid, "--resume") == 0
    after = {f.name: (f / "best.ckpt").stat().st_mtime_ns for f in folders}
    assert (interrupted / "run.json").is_file()
    assert [name for name in stamps if stamps[name] != after[name]] == [interrupted.name]
    runs = [row["Run"] for row in read_rows(tmp_path / "r.csv")]
    assert sorted(runs) == sorted(f.name for f in folders), "every run counted exactly once"


def test_stacked_heads_equal_separate_runs(tmp_path):
    seeds, rates = ["0", "1"], ["0.3", "0.5"]
    assert cli(tmp_path / "stacked", "--manualSeed", *seeds, "--corruption", *rates, "--last", "1") == 0
    for seed in seeds:
        for eta in rates:
            assert cli(tmp_path / "alone", "--manualSeed", seed, "--corruption", eta, "--last", "1") == 0
    stacked = sorted((tmp_path / "stacked" / "ck").iterdir())
    alone = sorted((tmp_path / "alone" / "ck").iterdir())
    assert [f.name for f in stacked] == [f.name for f in alone] and len(stacked) == 12
    for a, b in zip(stacked, alone):
        wa = torch.load(a / "last.ckpt", weights_only=True)["weight"]
        wb = torch.load(b / "last.ckpt", weights_only=True)["weight"]
        torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6)
        la = list(csv.DictReader(open(a / "log.csv")))
        lb = list(csv.DictReader(open(b / "log.csv")))
        np.testing.assert_allclose([float(r["train_loss"]) for r in la], [float(r["train_loss"]) for r in lb],
                                   rtol=1e-5)
