"""The ``train_linear.py`` command that trains a run or a chain: the one place such a command is built.

Every message that names a fix (a missing teacher, a damaged run, a report's missing chain) prints a
command built here, from the settings table (``training.settings``): the flags of the settings that differ
from the dataset's defaults and matter for the stage, the data flags that give its features, and the run key.

Standard library only (reports use it without torch).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from training.config import TrainConfig
from training.settings import setting_flags
from utils.cli import DEFAULT_STORE
from utils.stages import Stage


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


def _numbers(values: Sequence[float]) -> list[str]:
    return [f"{value:g}" if isinstance(value, float) else str(value) for value in values]


def chain_command(
    config: TrainConfig,
    data: Sequence[str],
    store: Path = DEFAULT_STORE,
    stage: Stage | None = None,
    rates: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The command that trains ``stage`` (None: the whole chain) with ``config``'s settings, for the η values
    ``rates`` and seeds ``seeds`` (default: ``config``'s own), its features given by the flags ``data``.

    A setting's flag appears where its value differs from the dataset's default and matters for the stage.
    """
    dataset = "" if config.feature_source.startswith("file:") or "--features" in data else config.dataset
    shown = config.with_stage(stage or Stage.pll())  # a whole chain: the PLL student's settings count too
    tokens = ["python3", "train_linear.py", *data, "--ctype", config.ctype]
    rates = [config.corruption] if rates is None else rates
    tokens += ["--corruption", *_numbers(rates)] if rates else []  # none: every η train_linear.py defaults to
    tokens += ["--seed", *_numbers(seeds if seeds is not None else [config.seed])]
    tokens += setting_flags(shown, dataset)
    tokens += list(extra)
    if Path(store) != DEFAULT_STORE:
        tokens += ["-c", str(store)]
    if stage is not None and stage.is_pll:
        tokens += ["--partial"]
    elif stage is not None and stage.dist is not None:
        tokens += ["--dist", str(stage.dist)]
    elif stage is not None:  # a baseline trains beside its chain, which the store reuses
        tokens += ["--baselines", stage.slug]
    return shlex.join(tokens)


def train_command(config: TrainConfig, store: Path, stage: Stage | None = None) -> str:
    """The command that trains ``config``'s run (or, with ``stage``, that stage of its chain) into ``store``."""
    return chain_command(config, data_flags(config), store, stage or config.stage)
