"""Run folders: checkpoints, per-epoch log, noisy labels and run.json, written atomically, read with checks.

A run folder holds ``best.ckpt`` and ``last.ckpt`` (weights, config, metrics; loadable on a CPU with
``weights_only=True``), ``log.csv`` (one row per epoch), ``labels.npz`` (the noisy training labels
and the train/validation row split) and ``run.json`` (config, metrics, provenance) — the source of
truth, written last, so a folder without it is an interrupted run.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from training.config import TrainConfig, stage_name
from utils import atomic
from utils.errors import UserError

RUN_JSON = "run.json"
LABELS = "labels.npz"


def run_dir(root: Path, config: TrainConfig) -> Path:
    return Path(root) / config.run_name()


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (RUN_JSON, "best.ckpt", "last.ckpt", LABELS))


def save_checkpoint(path: Path, weights: torch.Tensor, config: TrainConfig, metrics: dict, epoch: int) -> None:
    atomic.torch_save(path, {"weight": weights.detach().cpu().float().contiguous(), "config": config.to_dict(),
                             "metrics": metrics, "epoch": epoch})


def save_log(path: Path, history: list[dict[str, float]]) -> None:
    columns = list(history[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic.write_text(path, buffer.getvalue())


def save_labels(folder: Path, noisy: np.ndarray, train_index: np.ndarray, val_index: np.ndarray) -> None:
    atomic.savez(folder / LABELS, noisy=noisy.astype(np.int64), train_index=train_index.astype(np.int64),
                 val_index=val_index.astype(np.int64))


def load_labels(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(folder / LABELS, allow_pickle=False) as archive:
            return archive["noisy"], archive["train_index"], archive["val_index"]
    except Exception as error:
        raise UserError(f"cannot read {folder / LABELS} ({type(error).__name__}); retrain that run") from None


def load_teacher(root: Path, config: TrainConfig, num_classes: int, dim: int, make: str) -> tuple[torch.Tensor, Path]:
    """The weights (K, D) this stage learns from: round t−1's (or, for PLL, round 0's) best or last checkpoint.

    A missing teacher, one trained with other settings, an unreadable checkpoint or one whose shape
    does not fit the features is a :class:`UserError` naming ``make``, the command that trains the right one.
    """
    teacher = config.with_stage(config.teacher_stage)
    folder = run_dir(root, teacher)
    if not is_complete(folder):
        others = sorted(p for p in Path(root).glob(f"{teacher.run_prefix()}-*") if is_complete(p))
        if others:
            raise UserError(f"the {stage_name(teacher.stage)} in {others[0]} was trained with other settings "
                            f"({settings_difference(others[0], teacher)}); pass the same flags, or train a "
                            f"matching one with: {make}")
        raise UserError(f"no {stage_name(teacher.stage)} checkpoint in {folder}; train it first with: {make}")
    path = folder / ("last.ckpt" if config.last else "best.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        weights, stored = checkpoint["weight"], checkpoint["config"]
    except Exception as error:
        raise UserError(f"checkpoint {path} is unreadable ({type(error).__name__}); retrain it with: {make}") from None
    if not isinstance(stored, dict) or TrainConfig.from_dict(stored).identity() != teacher.identity():
        raise UserError(f"checkpoint {path} holds a run with other settings than its folder name says; "
                        f"retrain it with: {make}")
    if tuple(weights.shape) != (num_classes, dim):
        raise UserError(f"checkpoint {path} has weights of shape {tuple(weights.shape)} but the features need "
                        f"({num_classes}, {dim}); use the features it was trained on")
    return weights.float(), folder


def settings_difference(folder: Path, wanted: TrainConfig) -> str:
    """'lr 0.1 there vs 0.05 here, ...' between the run in ``folder`` and ``wanted``."""
    try:
        there = TrainConfig.from_dict(read_run(folder)["config"]).weight_settings()
    except (OSError, KeyError, TypeError, ValueError):
        return "its run.json is unreadable"
    here = wanted.weight_settings()
    changed = [f"{key} {there.get(key)} there vs {here.get(key)} here" for key in sorted(set(there) | set(here))
               if there.get(key) != here.get(key)]
    return ", ".join(changed) or "same settings, different hash"


def read_run(folder: Path) -> dict:
    with open(folder / RUN_JSON) as stream:
        return json.load(stream)
