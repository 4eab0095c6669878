"""The ``train_linear.py`` command that (re)trains a run, from its config: for messages that name a fix.

Standard library only (reports use it without torch).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from training.config import TrainConfig, default_lr_wd
from utils.stages import Stage

DEFAULTS = {
    "epochs": 200,
    "train_batch": 128,
    "gamma": 0.98,
    "momentum": 0.9,
    "optimizer": "sgd",
    "select": "test",
    "seeding": "reference",
}


def data_flags(config: TrainConfig) -> list[str]:
    """The flags that give a run's features: a file, or a dataset with its backbone."""
    if config.feature_source.startswith("file:"):
        return ["--features", config.feature_source[len("file:") :].rpartition("#")[0]]
    flags = ["-d", config.dataset]
    if config.backbone in ("resnet18", "resnet50"):
        flags += ["--depth", config.backbone[len("resnet") :]]
    elif config.backbone not in ("resnet34", "identity", "planted", "unknown"):
        flags += ["--arch", config.backbone]
    if config.weights.startswith("random-init"):
        flags += ["--weights", "none"]
    return flags


def train_command(config: TrainConfig, store: Path, stage: Stage | None = None) -> str:
    """The command that trains ``config``'s run (or, with ``stage``, that stage of its chain) into ``store``."""
    lr, wd = default_lr_wd(config.dataset if not config.feature_source.startswith("file:") else "")
    tokens = [
        "python3",
        "train_linear.py",
        *data_flags(config),
        "--ctype",
        config.ctype,
        "--corruption",
        f"{config.corruption:g}",
        "--seed",
        str(config.seed),
    ]
    if config.lr != lr:
        tokens += ["--lr", f"{config.lr:g}"]
    if config.wd != wd:
        tokens += ["--wd", f"{config.wd:g}"]
    for field, default in DEFAULTS.items():
        value = getattr(config, field)
        if value != default:
            tokens += [f"--{field.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    if config.select == "val" and config.val_fraction != 0.1:
        tokens += ["--val-fraction", f"{config.val_fraction:g}"]
    stage = stage or config.stage
    if not stage.is_teacher and config.last:
        tokens += ["--which", "last"]
    if stage.is_pll and (config.q, config.pll_k) != (0.7, 2):
        tokens += ["--q", f"{config.q:g}", "--pll-k", str(config.pll_k)]
    if str(store) != "checkpoints":
        tokens += ["-c", str(store)]
    tokens += ["--partial"] if stage.is_pll else ["--dist", str(stage.dist)]
    return shlex.join(tokens)
