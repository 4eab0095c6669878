"""The one place the estimators touch the training code: settings, defaults and the stage trainer.

Everything :mod:`selfdistill` knows about runs, stages and their defaults comes through this module,
from the project's single sources (``training.config`` for settings, defaults and their bounds,
``utils.stages`` for the stage vocabulary and the baselines). Training goes through the chain's own
per-stage path, ``training.stages.prepare_head`` then ``training.stages.train_heads``: the same
targets, loss, initialisation, batch orders and SGD steps as ``train_linear.py``'s runs, with an
in-memory stand-in for the run store (``_MemoryStore``) in place of run folders.

An estimator has no test set and no label noise of its own: the labels it is given ARE the labels
(the run's noise draw is ``sym`` at η = 0, which keeps every label), and students and the PLL student
learn from the previous model's last epoch (``--which last``): with no test set there is no best
epoch to pick.

Standard library at import (``training.config`` and ``utils.stages`` are): torch loads in
:func:`fit_stages`, the boundary between the estimators' parameters and the compute.
"""

from __future__ import annotations

import dataclasses
import re

from training.config import TrainConfig
from training.settings import FALLBACK_DEFAULTS, SETTINGS
from utils.errors import UsageError
from utils.methods import METHODS
from utils.stages import BASELINES, Stage

# The estimators' parameter for each TrainConfig field they set (the rest keep their names).
PARAMETERS = {"train_batch": "batch_size", "pll_k": "k", "seed": "random_state", "baselines": "method"}
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
DEFAULT_LR, DEFAULT_WD = FALLBACK_DEFAULTS  # the reference code's lr and wd, as for any --features file


def default(field: str):
    """The run setting's default, from ``TrainConfig``."""
    return _DEFAULTS[field]


# Baselines an estimator can train: the oracles (the true labels, the true noise) cannot.
ESTIMATOR_BASELINES = tuple(name for name in BASELINES if not METHODS[name].oracle)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run settings an estimator passes: TrainConfig's fields by name."""

    lr: float
    wd: float
    epochs: int
    train_batch: int
    gamma: float
    momentum: float
    optimizer: str
    seeding: str
    seed: int
    q: float = _DEFAULTS["q"]
    pll_k: int = _DEFAULTS["pll_k"]


@dataclasses.dataclass(frozen=True)
class TrainedStage:
    """One trained model: its stage's slug and label, weights (K, D) float32 and per-epoch history."""

    slug: str
    label: str
    weights: object  # numpy (K, D) float32
    history: list


def chain(rounds: int) -> list[Stage]:
    """The teacher then ``rounds`` students."""
    return [Stage.from_round(t) for t in range(rounds + 1)]


def teacher_and(name: str) -> list[Stage]:
    """The teacher then the PLL student (``"pll"``) or a baseline."""
    return [Stage.teacher(), Stage.parse(name)]


def baseline(name: str) -> list[Stage]:
    """A baseline alone (:func:`fit_stages` trains the teacher first where the method learns from it)."""
    return [Stage.parse(name)]


def parse_stage(value) -> Stage:
    """A stage from any of the project's spellings (``teacher``, ``student 2``, ``pll``, 0 …); else ValueError."""
    return Stage.parse(value)


def _config(settings: Settings, stage: Stage) -> TrainConfig:
    return TrainConfig(
        dataset="estimator",
        feature_source="estimator",
        backbone="estimator",
        weights="none",
        ctype="sym",
        corruption=0.0,
        stage=stage,
        last=1,  # no test set: learn from the previous model's last epoch
        **dataclasses.asdict(settings),
    )


# A model's history: the engine's log columns that mean something without a test set, renamed for
# an estimator (the labels it is given are the labels: ``train_acc_noisy`` is the accuracy on them).
HISTORY_COLUMNS = {"epoch": "epoch", "lr": "lr", "train_loss": "train_loss", "train_acc": "train_acc_noisy"}

_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
_FIELD_OF_FLAG = {flag: name for name, setting in SETTINGS.items() for flag in (setting.flag, *setting.aliases)}


def check(settings: Settings, stages: list[Stage], num_classes: int | None = None) -> None:
    """Validate each stage's settings as every run is validated; a ValueError names the estimator's parameter."""
    try:
        for stage in stages:
            _config(settings, stage).validate(num_classes)
    except UsageError as error:
        raise _value_error(error) from None


def _value_error(error: UsageError) -> ValueError:
    """The run's usage error as scikit-learn raises it: a ValueError naming the estimator's parameter."""
    return ValueError(_FLAG.sub(lambda m: _parameter(m.group(0)), str(error)))


def _parameter(flag: str) -> str:
    field = _FIELD_OF_FLAG.get(flag, flag.removeprefix("--"))
    return PARAMETERS.get(field, field)


class _MemoryRun:
    """What ``training.stages`` reads of a finished run, held in memory."""

    def __init__(self, config: TrainConfig, head, result):
        self.config, self.name = config, config.run_name()
        self._head, self._result = head, result

    def weights(self, which: str = "best"):
        return (self._result.last_weights if which == "last" else self._result.best_weights).clone()

    def labels(self, num_train: int, num_classes: int):
        return self._head.noisy, self._head.train_index, self._head.val_index


class _MemoryStore:
    """The run store's ``find``/``similar``, over the runs of one fit."""

    def __init__(self):
        self.runs: dict[TrainConfig, _MemoryRun] = {}

    def find(self, config: TrainConfig):
        from training.store import Lookup, State

        run = self.runs.get(config)
        return Lookup(config.run_name(), State.COMPLETE if run else State.MISSING, run, config=config)

    def similar(self, config: TrainConfig) -> list:
        return []

    root = "this fit"


def fit_stages(
    features, labels, num_classes: int, stages: list[Stage], settings: Settings, device: str, threads: int
) -> list[TrainedStage]:
    """Train ``stages`` in order on ``features`` (N, D) float32 with ``labels`` (N,) in 0..K-1.

    Each stage learns from the one before it as in the chain; returns each model's last weights and history.
    """
    check(settings, stages, num_classes)  # before torch loads: a bad value fails at once
    import numpy as np

    from data.feature_set import FeatureSet
    from training.stages import DeviceData, StageContext, prepare_head, train_heads
    from utils.device import resolve_device
    from utils.threads import cpu_threads

    features = FeatureSet(
        name="estimator",
        train_features=features,
        train_labels=labels,
        test_features=features[:0],
        test_labels=labels[:0],
        class_names=tuple(str(k) for k in range(num_classes)),
        source="estimator",
        backbone="estimator",
    )
    store = _MemoryStore()
    ctx = StageContext(store=store, csv_path=lambda config: None, command_for=lambda stage: "fit", threads=threads)
    trained: list[TrainedStage] = []

    def train(stage: Stage) -> None:
        config = _config(settings, stage)
        source = stage.checkpoint_source
        if source is not None and config.with_stage(source) not in store.runs:
            train(source)
        head = prepare_head(config, data, ctx)
        (result,) = train_heads([head], data, progress=None, threads=threads)
        store.runs[config] = _MemoryRun(config, head, result)
        history = [
            {key: row[column] for key, column in HISTORY_COLUMNS.items() if column in row} for row in result.history
        ]
        weights = np.ascontiguousarray(result.last_weights.numpy(), dtype=np.float32)
        trained.append(TrainedStage(stage.slug, stage.label, weights, history))

    try:
        where = resolve_device(device)
    except UsageError as error:  # CUDA asked for but absent
        raise _value_error(error) from None
    with cpu_threads(threads):
        data = DeviceData.load(features, where, clusters=None)
        for stage in stages:
            if _config(settings, stage) not in store.runs:
                train(stage)
    return trained
