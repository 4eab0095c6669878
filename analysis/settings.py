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

from training.config import TrainConfig
from training.settings import SETTINGS, identity_settings, same_value

# The feature map's identity, which the data flags give (not a setting of the table).
FEATURE_FIELDS = ("backbone", "weights")
FEATURE_FLAGS = {"backbone": "--backbone", "weights": "--weights"}


def shared_fields() -> tuple[str, ...]:
    """The fields every run of a chain shares: noise type, feature map, then the shared settings in table order."""
    return ("ctype", *FEATURE_FIELDS, *(s.name for s in identity_settings() if s.shared and s.name != "ctype"))


def per_stage_fields() -> tuple[str, ...]:
    return tuple(s.name for s in identity_settings() if not s.shared)


def fields() -> tuple[str, ...]:
    """Every field of a setting (read from the table each time, so a setting registered later is one too)."""
    return (*shared_fields(), *per_stage_fields())


def flag(field: str) -> str:
    return FEATURE_FLAGS.get(field) or SETTINGS[field].flag


def display(field: str, value: object) -> str:
    if field in SETTINGS:
        return SETTINGS[field].display(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One experiment's settings: every field of :func:`fields`, plus the exact feature source (not shown)."""

    values: tuple[tuple[str, object], ...]
    feature_source: str

    def get(self, field: str) -> object:
        return dict(self.values)[field]

    def describe(self, names: Iterable[str] | None = None) -> str:
        shown = dict(self.values)
        return ", ".join(
            f"{field.replace('_', ' ')} {display(field, shown[field])}"
            for field in (fields() if names is None else names)
            if field in shown and shown[field] is not None
        )

    def flags(self, names: Iterable[str]) -> str:
        """The flags that select this setting among others differing in the fields ``names``."""
        shown = dict(self.values)
        return " ".join(f"{flag(field)} {display(field, shown[field])}" for field in names if shown[field] is not None)


def shared_part(config: TrainConfig) -> tuple:
    values = {field: getattr(config, field) for field in shared_fields()}
    for field in values:
        if field in SETTINGS and not SETTINGS[field].matters(config):
            values[field] = None  # e.g. no validation split: the fraction changes nothing
    return tuple(values.items()) + (("feature_source", config.feature_source),)


def settings_of(configs: list[TrainConfig]) -> dict[Setting, list[TrainConfig]]:
    """Every setting the runs form, with the runs that belong to it (teachers belong to several)."""
    by_shared: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        by_shared.setdefault(shared_part(config), []).append(config)
    settings: dict[Setting, list[TrainConfig]] = {}
    for shared, members in by_shared.items():
        lasts = sorted({c.last for c in members if not c.is_teacher}) or [SETTINGS["last"].default]
        pll = sorted({(c.q, c.pll_k) for c in members if c.is_pll}) or [
            (SETTINGS["q"].default, SETTINGS["pll_k"].default)
        ]
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
    """What train_linear.py uses without flags, for every setting field."""
    return {field: SETTINGS[field].default_for(dataset) for field in fields() if field in SETTINGS}


def is_default(setting: Setting, dataset: str) -> bool:
    wanted = default_values(dataset)
    return all(setting.get(field) in (value, None) for field, value in wanted.items())


def matches(setting: Setting, wanted: dict[str, object]) -> bool:
    return all(same_value(setting.get(field), value) for field, value in wanted.items())


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
    return [field for field in fields() if len({repr(s.get(field)) for s in settings}) > 1]


def describe_others(
    chosen: Setting, others: list[Setting], settings: dict[Setting, list], unselectable: Iterable[str] = ()
) -> str:
    """'also present: wd 0.0005 (54 runs: --wd 0.0005); …' — what else the store holds and how to select it
    (no flags for a setting that differs in a field the printing script has no filter for: ``unselectable``)."""
    if not others:
        return ""
    parts = []
    for other in others:
        fields = differing_fields([chosen, other]) or ["backbone"]
        how = "" if set(fields) & set(unselectable) else f": {other.flags(fields)}"
        parts.append(f"{other.describe(fields)} ({len(settings[other])} runs{how})")
    return "also present: " + "; ".join(parts)


def non_default_fields(setting: Setting, dataset: str) -> list[str]:
    """The fields in which ``setting`` departs from the dataset's default (noise type and backbone aside:
    figures and names state those anyway)."""
    defaults = default_values(dataset)
    found = []
    for field in fields():
        value = setting.get(field)
        if value is None or field in ("ctype", *FEATURE_FIELDS) or defaults.get(field) == value:
            continue
        found.append(field)
    return found


def non_default_caption(setting: Setting, dataset: str) -> str:
    """'seeding independent, epochs 2' for a figure's title: every non-default setting; '' for the default."""
    found = non_default_fields(setting, dataset) if setting.values else []
    return setting.describe(found) if found else ""


def name_tokens(setting: Setting, dataset: str) -> list[str]:
    """File-name tokens for what distinguishes ``setting`` from the dataset's default (empty for the default)."""
    tokens = [
        f"{SETTINGS[field].short}{display(field, setting.get(field))}" for field in non_default_fields(setting, dataset)
    ]
    return [re.sub(r"[^A-Za-z0-9._+=-]", "-", token) for token in tokens]
