"""The grid mode: finished runs are reused, damaged and interrupted ones redone; stacked heads equal separate runs."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import torch

import train_linear
from training.store import RunStore

COMMON = ["-d", "synthetic", "--epochs", "3", "--ctype", "sym", "--rounds", "1"]


def cli(root, *args: str) -> int:
    return train_linear.main([*COMMON, "-c", str(root / "ck"), "--csv", str(root / "r.csv"), *args])


def rows(path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_resume_reuses_finished_runs_and_redoes_damaged_and_interrupted_ones(tmp_path, capsys):
    grid = ["--seed", "0", "1", "--corruption", "0.4"]
    assert cli(tmp_path, *grid) == 0
    store = RunStore(tmp_path / "ck")
    found = {r.name: r for r in store.records()}
    assert len(found) == 6  # 2 seeds × (teacher, student 1, PLL)
    truncated = next(r for name, r in found.items() if "seed1-student1" in name)
    (truncated.folder / "best.ckpt").write_bytes((truncated.folder / "best.ckpt").read_bytes()[:50])
    interrupted = next(r for name, r in found.items() if "seed0-pll" in name)
    # A writer killed before publishing leaves an unpublished folder and no symlink.
    (tmp_path / "ck" / interrupted.name).unlink()
    leftover = interrupted.folder.with_name(interrupted.folder.name.rsplit(".", 1)[0] + ".otherhost-999-dead")
    shutil.copytree(interrupted.folder, leftover)
    # The CSV lost a row and has a row cut in the middle.
    text = (tmp_path / "r.csv").read_text().splitlines()
    lost = next(line for line in text if interrupted.name in line)
    (tmp_path / "r.csv").write_text("\n".join(line for line in text if line != lost)[:-30])
    stamps = {name: r.folder for name, r in found.items()}
    capsys.readouterr()
    assert cli(tmp_path, *grid, "--resume") == 0
    after = {r.name: r.folder for r in store.records()}
    assert sorted(after) == sorted(stamps)
    assert [name for name in stamps if stamps[name] != after[name]] == sorted([truncated.name, interrupted.name])
    assert not leftover.exists() and not interrupted.folder.exists(), "stale folders are swept"
    assert sorted(row["Run"] for row in rows(tmp_path / "r.csv")) == sorted(after), "every run exactly once"


def test_stacked_heads_equal_separate_runs(tmp_path):
    seeds, rates = ["0", "1"], ["0.3", "0.5"]
    assert cli(tmp_path / "stacked", "--seed", *seeds, "--corruption", *rates, "--which", "last") == 0
    for seed in seeds:
        for eta in rates:
            assert cli(tmp_path / "alone", "--seed", seed, "--corruption", eta, "--last", "1") == 0
    stacked = sorted(RunStore(tmp_path / "stacked" / "ck").records(), key=lambda r: r.name)
    alone = sorted(RunStore(tmp_path / "alone" / "ck").records(), key=lambda r: r.name)
    assert [r.name for r in stacked] == [r.name for r in alone] and len(stacked) == 12
    for a, b in zip(stacked, alone):
        torch.testing.assert_close(a.weights("last"), b.weights("last"), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            [r["train_loss"] for r in a.history()], [r["train_loss"] for r in b.history()], rtol=1e-5
        )
