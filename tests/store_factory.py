"""Hand-made run stores for tests of what reads them (reports, figures): runs with chosen metrics, published
through the store's own API so that they verify like trained ones."""

from __future__ import annotations

from pathlib import Path

import torch

from training.config import TrainConfig
from training.store import RunRecord, RunStore
from utils.stages import Stage


def toy_config(
    dataset: str = "toy",
    eta: float = 0.5,
    stage: str = "0",
    seed: int = 0,
    wd: float = 5e-4,
    lr: float = 0.1,
    **changes,
) -> TrainConfig:
    values = dict(
        dataset=dataset,
        feature_source=f"{dataset}-features",
        backbone="identity",
        weights="none",
        ctype="cc",
        corruption=eta,
        seed=seed,
        stage=Stage.parse(stage),
        lr=lr,
        wd=wd,
    )
    return TrainConfig(**{**values, **changes})


def publish(
    root: Path, config: TrainConfig, test_acc: float, teacher: str | None = None, weights: torch.Tensor | None = None
) -> RunRecord:
    """A finished run of ``config`` whose selected epoch has test accuracy ``test_acc``."""
    store = RunStore(root)
    metrics = {
        "test_acc": test_acc,
        "final_acc": test_acc - 1,
        "train_acc": 99.0,
        "best_epoch": 1,
        "epochs": 1,
        "realized_corruption": config.corruption,
    }
    lock = store.try_lock(config)
    assert lock is not None
    try:
        writer = store.begin(config, lock)
        writer.append_log(
            {
                "epoch": 1,
                "lr": config.lr,
                "train_loss": 1.0,
                "train_acc_true": 99.0,
                "train_acc_noisy": 50.0,
                "test_loss": 1.0,
                "test_acc": test_acc,
            }
        )
        head = weights if weights is not None else torch.zeros(2, 3)
        writer.write_checkpoint("best", head, metrics, 1)
        writer.write_checkpoint("last", head, metrics, 1)
        writer.write_labels([0, 1], [0, 1], [])
        return store.publish(
            writer,
            {
                "stage": config.stage.slug,
                "config": config.to_dict(),
                "metrics": metrics,
                "teacher": teacher,
                "provenance": {},
            },
        )
    finally:
        lock.release()
