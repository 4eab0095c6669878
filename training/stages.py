"""Run one stage (teacher, student t or PLL) for a set of heads, and save each head as its own run.

Heads of one stage (different seeds and noise rates, same settings) are trained together as one
stacked model. Each head still gets its own noisy labels, validation split, initialisation and
batch order, all derived from its (seed, ctype, η, stage), so a head trained in a stack equals the
same head trained alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from data.feature_set import FeatureSet
from data.noise import make_noisy_labels
from data.validation import validation_split
from models.heads import init_head
from models.losses import PartialLabelGCE, SoftCrossEntropy
from training import runs
from training.config import TrainConfig
from training.engine import HeadProblem, HeadResult, Progress, SGDSettings, train_sgd
from training.exact import train_exact
from training.results import read_rows, result_row, upsert_rows
from training.targets import one_hot_targets, partial_label_targets, soft_targets
from utils import atomic
from utils.errors import UserError
from utils.provenance import provenance
from utils.seeding import derived_seed

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """A dataset's features and labels as tensors on the training device, loaded once per process."""

    features: FeatureSet
    train_features: torch.Tensor
    train_labels: torch.Tensor
    test_features: torch.Tensor
    test_labels: torch.Tensor
    clusters: np.ndarray | None  # cluster id per class, for cc noise

    @classmethod
    def load(cls, features: FeatureSet, device: torch.device, clusters: np.ndarray | None) -> "DeviceData":
        as_tensor = functools.partial(torch.as_tensor, device=device)
        return cls(features, as_tensor(features.train_features), as_tensor(features.train_labels),
                   as_tensor(features.test_features), as_tensor(features.test_labels), clusters)


@dataclasses.dataclass(frozen=True)
class StageOutputs:
    checkpoint_root: Path
    results_path: Callable[[TrainConfig], Path]
    command_for: Callable[[int | str], str]  # the command that trains a given stage, for error messages
    progress: Callable[[str], Progress | None] = lambda description: None


@dataclasses.dataclass
class HeadInputs:
    config: TrainConfig
    noisy: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    realized: float
    targets: torch.Tensor
    init: torch.Tensor
    teacher: Path | None


def _labels_for(config: TrainConfig, data: DeviceData, outputs: StageOutputs) -> tuple[np.ndarray, ...]:
    """(noisy labels, train rows, validation rows, realised rate): drawn for a teacher, read from round 0 otherwise."""
    true = data.features.train_labels
    if config.is_teacher:
        noisy = make_noisy_labels(true, config.ctype, config.corruption, config.seed, data.features.num_classes,
                                  data.clusters).labels
        if config.select == "val":
            train_index, val_index = validation_split(noisy, config.val_fraction, config.seed, config.ctype,
                                                      config.corruption)
        else:
            train_index, val_index = np.arange(true.shape[0]), np.zeros(0, dtype=np.int64)
    else:
        noisy, train_index, val_index = runs.load_labels(runs.run_dir(outputs.checkpoint_root, config.with_stage(0)))
        if noisy.shape != true.shape:
            raise UserError(f"the teacher's labels ({noisy.shape[0]}) do not match the dataset's {true.shape[0]} "
                            f"training samples; retrain the teacher with: {outputs.command_for(0)}")
    return noisy, train_index, val_index, float(np.mean(noisy != true))


def prepare_head(config: TrainConfig, data: DeviceData, outputs: StageOutputs) -> HeadInputs:
    k, d = data.features.num_classes, data.features.dim
    teacher_weights, teacher_folder = None, None
    if not config.is_teacher:
        teacher_weights, teacher_folder = runs.load_teacher(outputs.checkpoint_root, config, k, d,
                                                            outputs.command_for(config.teacher_stage))
    noisy, train_index, val_index, realized = _labels_for(config, data, outputs)
    device = data.train_features.device
    rows = torch.as_tensor(train_index, device=device)
    inputs = data.train_features[rows]
    if config.is_teacher:
        targets = one_hot_targets(torch.as_tensor(noisy[train_index], device=device), k)
    elif config.is_pll:
        targets = partial_label_targets(teacher_weights.to(device), inputs, config.pll_k)
    else:
        targets = soft_targets(teacher_weights.to(device), inputs)
    if config.is_pll:
        init = teacher_weights.clone()
    else:
        generator = torch.Generator().manual_seed(derived_seed(config.seed, "init", config.ctype, config.corruption,
                                                               str(config.stage)))
        init = init_head(k, d, generator)
    return HeadInputs(config, noisy, train_index, val_index, realized, targets, init, teacher_folder)


def loss_for(config: TrainConfig):
    return PartialLabelGCE(q=config.q) if config.is_pll else SoftCrossEntropy()


def eval_chunk(config: TrainConfig) -> int:
    """Rows per evaluation matmul: ``--test-batch`` or more; chunking changes no metric beyond float rounding."""
    return max(config.test_batch, 4096)


def sgd_settings(config: TrainConfig) -> SGDSettings:
    return SGDSettings(lr=config.lr, wd=config.wd, epochs=config.epochs, batch_size=config.train_batch,
                       gamma=config.gamma, momentum=config.momentum, select=config.select,
                       eval_batch=eval_chunk(config))


def build_problem(heads: list[HeadInputs], data: DeviceData) -> HeadProblem:
    device = data.train_features.device
    stack = lambda arrays: torch.as_tensor(np.stack(arrays), device=device)  # noqa: E731
    train_index = stack([h.train_index for h in heads])
    noisy = stack([h.noisy for h in heads])
    has_val = heads[0].val_index.size > 0
    val_index = stack([h.val_index for h in heads]) if has_val else None
    return HeadProblem(
        features=data.train_features, test_features=data.test_features, test_labels=data.test_labels,
        train_index=train_index, targets=torch.stack([h.targets for h in heads]),
        true_labels=data.train_labels[train_index], noisy_labels=torch.gather(noisy, 1, train_index),
        init=torch.stack([h.init for h in heads]).to(device),
        batch_seeds=[derived_seed(h.config.seed, "batches", h.config.ctype, h.config.corruption, str(h.config.stage))
                     for h in heads],
        loss=loss_for(heads[0].config),
        val_index=val_index, val_labels=torch.gather(noisy, 1, val_index) if has_val else None,
    )


def train_heads(heads: list[HeadInputs], data: DeviceData, progress: Progress | None) -> list[HeadResult]:
    config = heads[0].config
    problem = build_problem(heads, data)
    if config.optimizer == "lbfgs":
        return train_exact(problem, config.wd, eval_batch=eval_chunk(config))
    return train_sgd(problem, sgd_settings(config), progress)


def save_run(head: HeadInputs, result: HeadResult, outputs: StageOutputs, extra: dict) -> dict:
    """Write the head's run folder (run.json last) and its CSV row; return the run.json content."""
    config = head.config
    folder = runs.run_dir(outputs.checkpoint_root, config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.RUN_JSON).unlink(missing_ok=True)  # the folder counts as complete only once run.json is back
    metrics = {**result.metrics(), "realized_corruption": head.realized}
    last_epoch = result.history[-1]["epoch"]
    runs.save_checkpoint(folder / "best.ckpt", result.best_weights, config, metrics, result.best_epoch)
    runs.save_checkpoint(folder / "last.ckpt", result.last_weights, config, metrics, int(last_epoch))
    runs.save_log(folder / "log.csv", result.history)
    runs.save_labels(folder, head.noisy, head.train_index, head.val_index)
    run = {"run": folder.name, "stage": config.stage_name, "config": config.to_dict(), "metrics": metrics,
           "teacher": head.teacher.name if head.teacher else None, **extra}
    atomic.write_json(folder / runs.RUN_JSON, run)
    upsert_rows(outputs.results_path(config), [result_row(run)])
    return run


def finished_run(config: TrainConfig, outputs: StageOutputs, repair: bool = True) -> dict | None:
    """The run.json of ``config`` if its folder is complete, else None; with ``repair`` a missing CSV row is re-added.

    A folder without run.json is an interrupted run: it is not finished and will be trained again.
    """
    folder = runs.run_dir(outputs.checkpoint_root, config)
    if not runs.is_complete(folder):
        return None
    run = runs.read_run(folder)
    if TrainConfig.from_dict(run["config"]).identity() != config.identity():
        return None
    path = outputs.results_path(config)
    if repair and run["run"] not in {row.get("Run") for row in read_rows(path)}:
        upsert_rows(path, [result_row(run)])
    return run


def run_stage(configs: list[TrainConfig], data: DeviceData, outputs: StageOutputs, resume: bool = False) -> list[dict]:
    """Train ``configs`` (one stage, shared settings) as stacked heads; returns their run.json contents.

    With ``resume``, runs that already finished are read back instead of trained again.
    """
    assert len({(c.stage, tuple(sorted(c.weight_settings().items()))) for c in configs}) == 1, \
        "heads trained together share their stage and settings"
    runs_out: list[dict | None] = [finished_run(c, outputs) if resume else None for c in configs]
    todo = [i for i, run in enumerate(runs_out) if run is None]
    heads = {i: prepare_head(configs[i], data, outputs) for i in todo}
    groups: dict[tuple[int, int], list[int]] = {}
    for i, head in heads.items():  # heads stack when their row counts agree
        groups.setdefault((head.train_index.size, head.val_index.size), []).append(i)
    for members in groups.values():
        start = time.perf_counter()
        results = train_heads([heads[i] for i in members], data, outputs.progress(configs[0].stage_name))
        wall = time.perf_counter() - start
        device = str(data.train_features.device)
        extra = {"provenance": {**provenance(device), "wall_time_s": round(wall, 3), "heads_trained_together": len(members)}}
        for i, result in zip(members, results):
            runs_out[i] = save_run(heads[i], result, outputs, extra)
    return runs_out
