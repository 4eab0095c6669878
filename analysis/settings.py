"""Settings of a store's runs: which runs form one experiment, which one a report shows, and how to name it.

A chain's *setting* is its noise type and every training setting its runs share (features, lr, wd, epochs, batch,
gamma, momentum, optimizer, model selection, seeding) plus the checkpoint its students learn
from (``--which``) and the PLL student's q and k. A teacher belongs to every setting whose shared
part it matches. When a store holds several settings for a dataset, reports use the dataset's
default setting (what ``train_linear.py`` trains without flags), or, if the store has none, the
setting with most runs, and say which other settings are there and how to select them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Iterable

from training.config import TrainConfig, default_lr_wd

SHARED = (
    "ctype",
    "backbone",
    "weights",
    "lr",
    "wd",
    "epochs",
    "train_batch",
    "gamma",
    "momentum",
    "optimizer",
    "select",
    "val_fraction",
    "seeding",
)
PER_STAGE = ("last", "q", "pll_k")
FIELDS = (*SHARED, *PER_STAGE)
FLAGS = {
    "ctype": "--ctype",
    "backbone": "--backbone",
    "weights": "--weights",
    "lr": "--lr",
    "wd": "--wd",
    "epochs": "--epochs",
    "train_batch": "--train-batch",
    "gamma": "--gamma",
    "momentum": "--momentum",
    "optimizer": "--optimizer",
    "select": "--select",
    "val_fraction": "--val-fraction",
    "seeding": "--seeding",
    "last": "--which",
    "q": "--q",
    "pll_k": "--pll-k",
}
SHORT = {
    "ctype": "",
    "backbone": "",
    "weights": "weights-",
    "lr": "lr",
    "wd": "wd",
    "epochs": "ep",
    "train_batch": "batch",
    "gamma": "gamma",
    "momentum": "momentum",
    "optimizer": "",
    "select": "select-",
    "val_fraction": "val",
    "seeding": "",
    "last": "from-",
    "q": "q",
    "pll_k": "k",
}
# What train_linear.py uses without flags (lr and wd come per dataset, see default_values).
DEFAULTS = {
    "ctype": "cc",
    "epochs": 200,
    "train_batch": 128,
    "gamma": 0.98,
    "momentum": 0.9,
    "optimizer": "sgd",
    "select": "test",
    "seeding": "reference",
    "last": 0,
    "q": 0.7,
    "pll_k": 2,
}


def display(field: str, value: object) -> str:
    if field == "last":
        return "last" if value else "best"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One experiment's settings: every field of FIELDS, plus the exact feature source (not shown)."""

    values: tuple[tuple[str, object], ...]
    feature_source: str

    def get(self, field: str) -> object:
        return dict(self.values)[field]

    def describe(self, fields: Iterable[str] = FIELDS) -> str:
        shown = dict(self.values)
        return ", ".join(
            f"{field.replace('_', ' ')} {display(field, shown[field])}"
            for field in fields
            if field in shown and not (field == "val_fraction" and shown.get("select") != "val")
        )

    def flags(self, fields: Iterable[str]) -> str:
        """The flags that select this setting among others differing in ``fields``."""
        shown = dict(self.values)
        return " ".join(f"{FLAGS[field]} {display(field, shown[field])}" for field in fields)


def shared_part(config: TrainConfig) -> tuple:
    values = {field: getattr(config, field) for field in SHARED}
    if config.select != "val":
        values["val_fraction"] = None  # no validation split: the fraction changes nothing
    return tuple(values.items()) + (("feature_source", config.feature_source),)


def settings_of(configs: list[TrainConfig]) -> dict[Setting, list[TrainConfig]]:
    """Every setting the runs form, with the runs that belong to it (teachers belong to several)."""
    by_shared: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        by_shared.setdefault(shared_part(config), []).append(config)
    settings: dict[Setting, list[TrainConfig]] = {}
    for shared, members in by_shared.items():
        lasts = sorted({c.last for c in members if not c.is_teacher}) or [DEFAULTS["last"]]
        pll = sorted({(c.q, c.pll_k) for c in members if c.is_pll}) or [(DEFAULTS["q"], DEFAULTS["pll_k"])]
        for last, (q, k) in itertools.product(lasts, pll):
            values = tuple(item for item in shared if item[0] != "feature_source") + (
                ("last", last),
                ("q", q),
                ("pll_k", k),
            )
            setting = Setting(values, dict(shared)["feature_source"])
            settings[setting] = [
                c for c in members if c.is_teacher or (c.last == last and (not c.is_pll or (c.q, c.pll_k) == (q, k)))
            ]
    return settings


def default_values(dataset: str) -> dict[str, object]:
    lr, wd = default_lr_wd(dataset)
    return {**DEFAULTS, "lr": lr, "wd": wd}


def is_default(setting: Setting, dataset: str) -> bool:
    wanted = default_values(dataset)
    return all(setting.get(field) == value for field, value in wanted.items())


def matches(setting: Setting, wanted: dict[str, object]) -> bool:
    for field, value in wanted.items():
        have = setting.get(field)
        if isinstance(value, float) and isinstance(have, (int, float)):
            if abs(have - value) > 1e-9 * max(1.0, abs(value)):
                return False
        elif have != value:
            return False
    return True


def choose(
    settings: dict[Setting, list], dataset: str, wanted: dict[str, object]
) -> tuple[Setting | None, list[Setting]]:
    """(the setting to show, the others present): among those matching ``wanted``, the dataset's default
    if present, else the one with most runs (ties: the first in a fixed order)."""
    candidates = sorted((s for s in settings if matches(s, wanted)), key=lambda s: repr(s.values))
    if not candidates:
        return None, sorted(settings, key=lambda s: repr(s.values))
    defaults = [s for s in candidates if is_default(s, dataset)]
    chosen = defaults[0] if defaults else max(candidates, key=lambda s: len(settings[s]))
    return chosen, [s for s in sorted(settings, key=lambda s: repr(s.values)) if s != chosen]


def differing_fields(settings: Iterable[Setting]) -> list[str]:
    settings = list(settings)
    return [field for field in FIELDS if len({repr(s.get(field)) for s in settings}) > 1]


def describe_others(chosen: Setting, others: list[Setting], settings: dict[Setting, list]) -> str:
    """'also present: wd 0.0005 (54 runs: --wd 0.0005); …' — what else the store holds and how to select it."""
    if not others:
        return ""
    parts = []
    for other in others:
        fields = differing_fields([chosen, other]) or ["backbone"]
        parts.append(f"{other.describe(fields)} ({len(settings[other])} runs: {other.flags(fields)})")
    return "also present: " + "; ".join(parts)


def non_default_fields(setting: Setting, dataset: str) -> list[str]:
    """The fields in which ``setting`` departs from the dataset's default (noise type and backbone aside:
    figures and names state those anyway)."""
    defaults = default_values(dataset)
    fields = []
    for field in FIELDS:
        value = setting.get(field)
        if field == "val_fraction" and setting.get("select") != "val":
            continue
        if field in ("ctype", "backbone", "weights") or defaults.get(field) == value:
            continue
        fields.append(field)
    return fields


def non_default_caption(setting: Setting, dataset: str) -> str:
    """'seeding independent, epochs 2' for a figure's title: every non-default setting; '' for the default."""
    fields = non_default_fields(setting, dataset) if setting.values else []
    return setting.describe(fields) if fields else ""


def name_tokens(setting: Setting, dataset: str) -> list[str]:
    """File-name tokens for what distinguishes ``setting`` from the dataset's default (empty for the default)."""
    tokens = [f"{SHORT[field]}{display(field, setting.get(field))}" for field in non_default_fields(setting, dataset)]
    return [re.sub(r"[^A-Za-z0-9._+=-]", "-", token) for token in tokens]
