"""Run one stage (teacher, student t or PLL) for a set of heads through the run store.

Heads of one stage (different seeds and noise rates, same settings) train together as one stacked
model. Each head still gets its own noisy labels, validation split, initialisation and batch order
(training.randomness), so a head trained in a stack equals the same head trained alone, and each
is published as its own run.

With other processes on the same store: a process takes the locks of the stage's runs it needs in
sorted name order without blocking, trains the runs it holds as one stack, then waits for the
runs other processes hold and reuses them. A finished, verified run is reused (``force`` trains
it again); a damaged one is trained again.
"""

from __future__ import annotations

import contextlib
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
from training import results
from training.config import TrainConfig
from training.engine import HeadProblem, HeadResult, Progress, SGDSettings, train_sgd
from training.exact import train_exact
from training.methods import learned, loss_for
from training.metrics import candidate_coverage, expected_calibration_error, label_correction
from training.randomness import BatchOrder, head_draws
from training.store import RunRecord, RunStore, State, writing
from utils.errors import UserError
from utils.methods import CLUSTERS, CONFIDENT_FOLDS, TRUE_LABELS
from utils.provenance import provenance
from utils.stages import Stage
from utils.testhooks import step
from utils.threads import cpu_threads

log = logging.getLogger(__name__)
WAIT_POLL_S = 0.25


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
        return cls(
            features,
            as_tensor(features.train_features),
            as_tensor(features.train_labels),
            as_tensor(features.test_features),
            as_tensor(features.test_labels),
            clusters,
        )


@dataclasses.dataclass(frozen=True)
class StageContext:
    """Where a stage's runs go and how it reports: the store, the CSV export, messages and progress."""

    store: RunStore
    csv_path: Callable[[TrainConfig], Path]
    command_for: Callable[[Stage], str]  # the command that trains a given stage, for error messages
    progress: Callable[[str], Progress | None] = lambda description: None
    announce: Callable[[str], None] = lambda message: None  # a line of progress (not on a terminal)
    threads: int = 1
    force: bool = False
    locks: dict = dataclasses.field(default_factory=dict)  # the locks this process holds, by config


@dataclasses.dataclass(frozen=True)
class StageRun:
    """A run of the stage as the chain sees it: its record, and whether it was reused rather than trained."""

    record: RunRecord
    reused: bool


@dataclasses.dataclass
class HeadInputs:
    config: TrainConfig
    noisy: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    realized: float
    targets: torch.Tensor
    init: torch.Tensor
    order: BatchOrder
    teacher: str | None
    transition: torch.Tensor | None = None  # forward correction's T
    notes: dict = dataclasses.field(default_factory=dict)


# -- what a head learns from ------------------------------------------------------------------------


def finished(store: RunStore, config: TrainConfig, ctx: StageContext) -> RunRecord:
    """The finished run ``config`` describes, or a UserError naming the command that (re)trains it."""
    found = store.find(config)
    if found.state.finished:
        return found.record
    label, make = config.stage.label, ctx.command_for(config.stage)
    if found.state is State.DAMAGED:
        raise UserError(f"the {label} run {found.name} is damaged ({found.problem}); train it again with: {make}")
    others = store.similar(config)
    if others:
        raise UserError(
            f"the {label} run {others[0].name} was trained with other settings "
            f"({settings_difference(others[0].config, config)}); pass the same flags, or train a "
            f"matching one with: {make}"
        )
    where = "is being trained by another process" if found.state is State.IN_PROGRESS else "is not in"
    raise UserError(f"no {label} run {found.name}: it {where} {store.root}; train it first with: {make}")


def settings_difference(there: TrainConfig, wanted: TrainConfig) -> str:
    """'lr 0.1 there vs 0.05 here, ...' between two configs' weight settings."""
    a, b = there.weight_settings(), wanted.weight_settings()
    changed = [
        f"{key} {a.get(key)} there vs {b.get(key)} here" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)
    ]
    return ", ".join(changed) or "same settings, different hash"


def _labels_for(config: TrainConfig, data: DeviceData, store: RunStore, ctx: StageContext) -> tuple[np.ndarray, ...]:
    """(noisy labels, train rows, validation rows, realised rate): drawn for a teacher, read from the teacher's run."""
    true = data.features.train_labels
    method = config.stage.method
    if not method.learns_from_a_model:  # methods on labels draw the teacher's labels (or take the true ones)
        noisy = make_noisy_labels(
            true, config.ctype, config.corruption, config.seed, data.features.num_classes, data.clusters
        ).labels
        if method.learns_from == TRUE_LABELS:
            noisy = true.copy()
        if config.select == "val":
            train_index, val_index = validation_split(
                noisy, config.val_fraction, config.seed, config.ctype, config.corruption
            )
        else:
            train_index, val_index = np.arange(true.shape[0]), np.zeros(0, dtype=np.int64)
    else:
        teacher = finished(store, config.with_stage(Stage.teacher()), ctx)
        noisy, train_index, val_index = teacher.labels(true.shape[0], data.features.num_classes)
    return noisy, train_index, val_index, float(np.mean(noisy != true))


def prepare_head(config: TrainConfig, data: DeviceData, ctx: StageContext) -> HeadInputs:
    k, d = data.features.num_classes, data.features.dim
    teacher_weights, teacher_name = None, None
    source = config.stage.checkpoint_source
    if source is not None:
        teacher = finished(ctx.store, config.with_stage(source), ctx)
        teacher_weights = teacher.weights("last" if config.last else "best")
        if tuple(teacher_weights.shape) != (k, d):
            raise UserError(
                f"the {teacher.config.stage.label} run {teacher.name} has weights of shape "
                f"{tuple(teacher_weights.shape)} but the features need ({k}, {d}); use the features it "
                f"was trained on"
            )
        teacher_name = teacher.name
    noisy, train_index, val_index, realized = _labels_for(config, data, ctx.store, ctx)
    device = data.train_features.device
    inputs = data.train_features[torch.as_tensor(train_index, device=device)]
    # Baselines start from the teacher's initial weights and batch order (a paired comparison).
    init, order = head_draws(
        config.seeding,
        config.seed,
        (config.ctype, config.corruption, config.stage.distill),
        config.stage.method.learns_from_a_model,
        k,
        d,
    )

    def confident(rows: np.ndarray) -> np.ndarray:
        from training.confident import confident_learning  # loads cleanlab: only chains with the cl baseline

        found = confident_learning(
            data.train_features[torch.as_tensor(rows, device=device)],
            noisy[rows],
            k,
            sgd_settings(config),
            init,
            order,
            config.seed,
        )
        return found.kept

    needs = config.stage.method.needs  # what the method's targets get beyond the labels and features
    method = learned(
        config,
        inputs,
        noisy,
        train_index,
        data.features.train_labels,
        k,
        teacher_weights,
        data.clusters if CLUSTERS in needs else None,
        confident if CONFIDENT_FOLDS in needs else None,
    )
    if config.stage.method.starts_from_source:
        init = teacher_weights.clone()  # the authors' PLL head loads the teacher's checkpoint
    return HeadInputs(
        config,
        noisy,
        method.train_index,
        val_index,
        realized,
        method.targets,
        init,
        order,
        teacher_name,
        method.transition,
        method.notes,
    )


# -- training ----------------------------------------------------------------------------------------


def eval_chunk(config: TrainConfig) -> int:
    """Rows per evaluation matmul: ``--test-batch`` or more; chunking changes no metric beyond float rounding."""
    return max(config.test_batch, 4096)


def sgd_settings(config: TrainConfig) -> SGDSettings:
    return SGDSettings(
        lr=config.lr,
        wd=config.wd,
        epochs=config.epochs,
        batch_size=config.train_batch,
        gamma=config.gamma,
        momentum=config.momentum,
        select=config.select,
        eval_batch=eval_chunk(config),
    )


def build_problem(heads: list[HeadInputs], data: DeviceData) -> HeadProblem:
    device = data.train_features.device
    stack = lambda arrays: torch.as_tensor(np.stack(arrays), device=device)  # noqa: E731
    train_index = stack([h.train_index for h in heads])
    noisy = stack([h.noisy for h in heads])
    has_val = heads[0].val_index.size > 0
    val_index = stack([h.val_index for h in heads]) if has_val else None
    return HeadProblem(
        features=data.train_features,
        test_features=data.test_features,
        test_labels=data.test_labels,
        train_index=train_index,
        targets=torch.stack([h.targets for h in heads]),
        true_labels=data.train_labels[train_index],
        noisy_labels=torch.gather(noisy, 1, train_index),
        init=torch.stack([h.init for h in heads]).to(device),
        orders=[h.order for h in heads],
        loss=loss_for([h.config for h in heads], [h.transition for h in heads], device),
        val_index=val_index,
        val_labels=torch.gather(noisy, 1, val_index) if has_val else None,
    )


def train_heads(
    heads: list[HeadInputs], data: DeviceData, progress: Progress | None, on_epoch=None, threads: int = 1
) -> list[HeadResult]:
    """Train the heads as one stack on ``threads`` CPU threads (restored afterwards)."""
    config = heads[0].config
    problem = build_problem(heads, data)
    with cpu_threads(threads):
        if config.optimizer == "lbfgs":
            return train_exact(problem, config.wd, eval_batch=eval_chunk(config))
        return train_sgd(problem, sgd_settings(config), progress, on_epoch=on_epoch)


def _train_and_publish(held: list[TrainConfig], data: DeviceData, ctx: StageContext) -> dict[TrainConfig, RunRecord]:
    """Train the runs this process holds the locks of, as stacks of equal row counts; publish each."""
    heads = {config: prepare_head(config, data, ctx) for config in held}
    groups: dict[tuple[int, int], list[TrainConfig]] = {}
    for config, head in heads.items():  # heads stack when their row counts agree
        groups.setdefault((head.train_index.size, head.val_index.size), []).append(config)
    published: dict[TrainConfig, RunRecord] = {}
    first = 1  # the announced ranges of runs add up to the runs held: "runs 1–9 of 15", "runs 10–15 of 15"
    for members in groups.values():
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(writing(ctx.store, config, ctx.locks[config])) for config in members]
            stage = members[0].stage.label
            last, first = first + len(members) - 1, first + len(members)
            if len(members) == len(held):
                part = ""
            elif len(members) == 1:
                part = f" (run {last} of {len(held)})"
            else:
                part = f" (runs {last - len(members) + 1}–{last} of {len(held)})"
            ctx.announce(
                f"{stage}: training {len(members)} run(s){part}; log of the first: {writers[0].folder / 'log.csv'}"
            )
            started, start = time.time(), time.perf_counter()

            def on_epoch(rows: list[dict[str, float]]) -> None:
                for writer, row in zip(writers, rows):
                    writer.append_log(row)

            results_ = train_heads([heads[c] for c in members], data, ctx.progress(stage), on_epoch, ctx.threads)
            wall = time.perf_counter() - start
            step("trained")
            extra = {
                **provenance(str(data.train_features.device)),
                "threads": ctx.threads,
                "wall_time_s": round(wall, 3),
                "heads_trained_together": len(members),
                "started": started,
                "finished": time.time(),
            }
            for writer, config, result in zip(writers, members, results_):
                published[config] = _publish(writer, heads[config], result, extra, ctx, data)
    return published


def evaluation(head: HeadInputs, weights: torch.Tensor, data: DeviceData) -> dict[str, float | None]:
    """What the selected checkpoint does beyond accuracy: calibration on the test set (top-label ECE, %),
    label correction on the training split (corrected: corrupted labels predicted as the true class;
    kept: clean labels still predicted right, %) and, for PLL, how often the true class is a candidate."""
    weights = weights.to(data.train_features.device)
    rows = np.setdiff1d(np.arange(data.features.train_labels.shape[0]), head.val_index)
    predicted = (data.train_features[torch.as_tensor(rows)] @ weights.T).argmax(dim=-1).cpu().numpy()
    correction = label_correction(predicted, data.features.train_labels[rows], head.noisy[rows])
    probabilities = torch.softmax(data.test_features @ weights.T, dim=-1)
    found = {
        "ece": expected_calibration_error(probabilities, data.test_labels),
        "corrected": correction.corrected,
        "kept": correction.kept,
    }
    if head.config.stage.method.candidates:
        found["candidates"] = candidate_coverage(head.targets > 0, data.features.train_labels[head.train_index])
    return {key: (None if value is None or not np.isfinite(value) else float(value)) for key, value in found.items()}


def _publish(
    writer, head: HeadInputs, result: HeadResult, extra: dict, ctx: StageContext, data: DeviceData
) -> RunRecord:
    metrics = {**result.metrics(), "realized_corruption": head.realized, **evaluation(head, result.best_weights, data)}
    if result.history and not (writer.folder / "log.csv").exists():  # the exact solver has no epochs to stream
        for row in result.history:
            writer.append_log(row)
    writer.write_checkpoint("best", result.best_weights, metrics, result.best_epoch)
    writer.write_checkpoint("last", result.last_weights, metrics, int(result.history[-1]["epoch"]))
    writer.write_labels(head.noisy, head.train_index, head.val_index)
    content = {
        "stage": head.config.stage.slug,
        "config": head.config.to_dict(),
        "metrics": metrics,
        "teacher": head.teacher,
        "method": head.notes,
        "provenance": extra,
    }
    return ctx.store.publish(writer, content)


def _export(records: list[RunRecord], ctx: StageContext) -> None:
    by_path: dict[Path, list[RunRecord]] = {}
    for record in records:
        by_path.setdefault(ctx.csv_path(record.config), []).append(record)
    for path, group in by_path.items():
        results.upsert(path, group, ctx.store)


def run_stage(configs: list[TrainConfig], data: DeviceData, ctx: StageContext) -> list[StageRun]:
    """Every run of ``configs`` (one stage, shared settings): reused when finished, else trained here
    or by whichever process holds its lock. Returns them in the order of ``configs``."""
    if len({(c.stage, tuple(sorted(c.weight_settings().items()))) for c in configs}) != 1:
        raise ValueError("heads trained together share their stage and settings")
    store = ctx.store
    for config in configs:  # what the stage learns from must be there before anything is locked or written
        source = config.stage.checkpoint_source
        if source is not None:
            finished(store, config.with_stage(source), ctx)
    done: dict[TrainConfig, StageRun] = {}
    pending = sorted(dict.fromkeys(configs), key=TrainConfig.run_name)
    waited: set[TrainConfig] = set()
    while pending:
        held, blocked = [], []
        ctx_locks: dict[TrainConfig, object] = {}
        try:
            for config in pending:
                reusable = not ctx.force or config in waited
                found = store.find(config)
                if reusable and found.state.finished:
                    done[config] = StageRun(found.record, True)
                    continue
                lock = store.try_lock(config)
                if lock is None:
                    blocked.append(config)
                    continue
                found = store.find(config)  # it may have been published while we asked for the lock
                if reusable and found.state.finished:
                    lock.release()
                    done[config] = StageRun(found.record, True)
                    continue
                ctx_locks[config] = lock
                held.append(config)
            if held:
                step("locked")
                trained = _train_and_publish(held, data, dataclasses.replace(ctx, locks=ctx_locks))
                done.update({config: StageRun(record, False) for config, record in trained.items()})
        finally:
            for lock in ctx_locks.values():
                lock.release()
        pending = blocked
        if pending:
            _wait_for_others(pending, ctx)
            waited.update(pending)
    runs = [done[config] for config in configs]
    _export([run.record for run in runs], ctx)  # reused runs too: a row lost to an interruption comes back
    return runs


def _wait_for_others(pending: list[TrainConfig], ctx: StageContext) -> None:
    """Wait until no live process holds the lock of any of ``pending`` (a dead holder's lock is stale)."""
    # One read per lock: a holder may release it between two reads.
    holders = sorted({holder["described"] for holder in map(ctx.store.lock_holder, pending) if holder})
    if holders:
        ctx.announce(f"waiting for {len(pending)} run(s) held by {'; '.join(holders)}")
    while any(ctx.store.lock_holder(config) is not None for config in pending):
        time.sleep(WAIT_POLL_S)
