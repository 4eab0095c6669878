"""Selecting the runs a report shows: from the run store, one setting per dataset, one run per seed.

Runs come from the store (``-c``), verified; ``--results FILE`` restricts them to the runs a
results CSV lists. Filters (``--ctype``, ``--lr``, ``--wd`` …) fix setting values; among the
settings left, a dataset shows its default setting, or the one with most runs
(:mod:`analysis.settings`), and the report names the others and the flags that select them.
Settings are chosen by their values, never by a name: the reference's plot and table scripts call
the weight-decay settings "small" and "big" the other way round from its training commands.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

from analysis import settings as settings_mod
from analysis.settings import Setting
from data.registry import DATASET_NAMES
from training.config import TrainConfig
from training.results import read_csv
from utils.errors import UsageError, UserError
from utils.stages import Stage

log = logging.getLogger(__name__)
METRICS = {"test": "test_acc", "final": "final_acc", "train": "train_acc"}


def eta_key(value: float) -> float:
    """η as a dictionary key: 0.5 from a record and 0.50 from a flag are one column."""
    return round(float(value), 10)


def format_value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class PerDataset:
    """A filter value for every dataset and/or per dataset, as in ``--wd 5e-4 cifar100=5e-5``."""

    default: float | None = None
    named: tuple[tuple[str, float], ...] = ()

    def for_dataset(self, dataset: str) -> float | None:
        return dict(self.named).get(dataset, self.default)

    def describe(self) -> str:
        """As given on the command line, e.g. ``5e-05 flowers102=0.0005``; empty when unset."""
        parts = [] if self.default is None else [format_value(self.default)]
        return " ".join(parts + [f"{name}={format_value(value)}" for name, value in self.named])


def parse_per_dataset(flag: str, tokens: Sequence[str]) -> PerDataset:
    """``VALUE`` for every dataset, ``NAME=VALUE`` for one; a named value wins over the plain one."""
    default: float | None = None
    named: dict[str, float] = {}
    for token in tokens:
        name, has_name, text = token.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{flag}: expected a number or DATASET=NUMBER, got {token!r}") from None
        if not has_name:
            if default is not None:
                raise UsageError(
                    f"{flag}: more than one plain value ({format_value(default)}, {text}); "
                    f"give one, or DATASET=VALUE per dataset"
                )
            default = value
        elif not name or name in named:
            raise UsageError(
                f"{flag}: {'a dataset name is missing in' if not name else 'a second value for'} {token!r}"
            )
        else:
            named[name] = value
    return PerDataset(default, tuple(named.items()))


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which runs to report; ``None`` (or an empty ``PerDataset``) keeps every value."""

    datasets: tuple[str, ...] = ()
    ctype: str | None = None
    lr: PerDataset = PerDataset()
    wd: PerDataset = PerDataset()
    values: tuple[tuple[str, object], ...] = ()  # other setting fields fixed by flags (analysis.settings.fields())

    def wanted(self, dataset: str) -> dict[str, object]:
        """Setting field → the value the runs of ``dataset`` must have, for every filter that is set."""
        fixed = {
            "ctype": self.ctype,
            "lr": self.lr.for_dataset(dataset),
            "wd": self.wd.for_dataset(dataset),
            **dict(self.values),
        }
        return {field: value for field, value in fixed.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class DatasetResults:
    """The selected runs of one dataset: one setting, at most one run per (stage, η, seed)."""

    dataset: str
    setting: Setting
    accuracy: dict[tuple[Stage, float], dict[int, float]]  # (stage, η) → seed → accuracy (%)
    others: str = ""  # the other settings present and the flags that select them
    runs: tuple[str, ...] = ()
    measures: dict[str, dict[tuple[Stage, float], dict[int, float]]] = dataclasses.field(default_factory=dict)
    # run metrics beyond accuracy (MEASURES), as accuracy is held; missing where a run has none

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for by_seed in self.accuracy.values() for seed in by_seed})

    @property
    def etas(self) -> list[float]:
        """The noise rates of the runs (the η = 0 of a head that does not depend on η is not one: it fills every
        column)."""
        return sorted({eta for stage, eta in self.accuracy if stage.method.depends_on_eta})

    @property
    def rounds(self) -> int:
        """The last student round present (0 when there is none)."""
        return max((stage.round for stage, _ in self.accuracy if stage.is_student), default=0)


def listed_runs(paths: Sequence[Path]) -> set[str]:
    """The run names a results CSV lists (its Run column)."""
    names: set[str] = set()
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"results file {path} not found (train_linear.py writes results/<ctype>.csv)")
        rows, damaged = read_csv(Path(path))
        if damaged:
            log.warning("%s has damaged rows; their runs are left out", path)
        names |= {row["Run"] for row in rows}
    return names


def refuse_damaged(store, datasets: Sequence[str], ctype: str | None) -> None:
    """A damaged run among those a report could use is a one-line error naming it and the command that redoes it."""
    from training.commands import train_command
    from training.store import State

    for lookup in store.lookups():
        if lookup.state is not State.DAMAGED:
            continue
        config = lookup.config
        dataset = config.dataset if config is not None else lookup.name.split("-")[0]
        if (datasets and dataset not in datasets) or (ctype and config is not None and config.ctype != ctype):
            continue
        redo = (
            train_command(config, store.root)
            if config is not None
            else f"the train_linear.py command that made it (it reuses every finished run), or remove it with: "
            f"python3 runs.py clean --damaged -c {store.root}"
        )
        raise UserError(f"run {lookup.name} in {store.root} is damaged ({lookup.problem}); redo it with: {redo}")


def runs_of(records, filters: Filters, listed: set[str] | None) -> list:
    return [r for r in records if listed is None or r.name in listed]


def select(
    records, filters: Filters, metric: str = "test", listed: set[str] | None = None, every_setting: bool = False
) -> list[DatasetResults]:
    """The runs of each dataset (``filters.datasets``, or every dataset there) in the setting to report
    (with ``every_setting``: one entry per setting matching the filters)."""
    records = runs_of(records, filters, listed)
    present = sorted({r.config.dataset for r in records})
    datasets = list(filters.datasets) or present
    if not datasets:
        raise UserError(
            "no runs to report: the store holds none (or --results lists none of its runs); "
            "train some first, e.g. python3 train_linear.py"
        )
    unknown = [name for name in datasets if name not in present]
    there = f"datasets there: {', '.join(present) or 'none'}"
    # A name that is no dataset at all is a wrong value (exit 2); a dataset the store has no runs of is
    # about the store's content (exit 1), fixed by training it or by pointing -c at another store.
    invalid = [name for name in unknown if name not in DATASET_NAMES]
    if invalid:
        raise UsageError(
            f"unknown dataset {', '.join(map(repr, invalid))}; choose one of: {', '.join(DATASET_NAMES)} ({there})"
        )
    if unknown:
        raise UserError(
            f"no runs of dataset {', '.join(unknown)} in the store ({there}); "
            f"train them with: python3 train_linear.py -d {' '.join(unknown)}"
        )
    for flag, per_dataset in (("--lr", filters.lr), ("--wd", filters.wd)):
        stray = [name for name, _ in per_dataset.named if name not in datasets]
        if stray:
            raise UsageError(
                f"{flag} names {', '.join(stray)}, which is not among the datasets reported ({', '.join(datasets)})"
            )
    selected = []
    for dataset in datasets:
        mine = [r for r in records if r.config.dataset == dataset]
        by_config = {r.config: r for r in mine}
        settings = settings_mod.settings_of(list(by_config))
        wanted = filters.wanted(dataset)
        chosen, others = settings_mod.choose(settings, dataset, wanted)
        if chosen is None:
            fields = sorted(wanted)
            present_values = "; ".join(
                f"{settings_mod.flag(f)} {', '.join(sorted({settings_mod.display(f, s.get(f)) for s in settings}))}"
                for f in fields
            )
            asked = ", ".join(f"{settings_mod.flag(f)} {format_value(v)}" for f, v in wanted.items())
            raise UserError(f"{dataset}: no runs with {asked} (its runs have {present_values})")
        for setting in [chosen] + [s for s in others if settings_mod.matches(s, wanted)] if every_setting else [chosen]:
            rest = [s for s in settings if s != setting]
            selected.append(
                _dataset_results(
                    dataset,
                    setting,
                    [by_config[c] for c in settings[setting]],
                    metric,
                    settings_mod.describe_others(setting, rest, settings),
                )
            )
            log.info("%s: %d runs in setting %s", dataset, len(settings[setting]), setting.describe())
    return selected


MEASURES = ("ece", "corrected", "kept", "candidates")


def _dataset_results(dataset: str, setting: Setting, records, metric: str, others: str) -> DatasetResults:
    accuracy: dict[tuple[Stage, float], dict[int, float]] = {}
    measures: dict[str, dict[tuple[Stage, float], dict[int, float]]] = {name: {} for name in MEASURES}
    for record in records:
        config: TrainConfig = record.config
        key = (config.stage, eta_key(config.corruption))
        accuracy.setdefault(key, {})[config.seed] = record.metrics[METRICS[metric]]
        for name in MEASURES:
            if isinstance(record.metrics.get(name), (int, float)):
                measures[name].setdefault(key, {})[config.seed] = float(record.metrics[name])
    return DatasetResults(dataset, setting, accuracy, others, tuple(sorted(r.name for r in records)), measures)
