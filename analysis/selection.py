"""Selecting runs from results CSVs by their values: column filters, one setting per dataset, one run per seed.

Runs are chosen by the values in the CSV's columns, never by a setting's name: the reference's
plot and table scripts call the weight-decay settings "small" and "big" the other way round from
its training commands. Rows that hold more than one setting for a dataset are an error that names
the column to filter on, so different settings are never averaged together.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from pathlib import Path
from typing import Sequence

from training.config import PLL
from training.schema import COLUMNS
from utils.errors import UsageError, UserError

log = logging.getLogger(__name__)

Stage = int | str  # 0 the teacher, t ≥ 1 student t, PLL the PLL student

# The results CSV's columns the report reads: all of those training/results.py writes but one.
REQUIRED_COLUMNS = tuple(column for column in COLUMNS if column != "Realized Corruption")
METRICS = {"test": "Test Acc.", "final": "Final Acc.", "train": "Train Acc."}

# Columns whose values make a setting, with the flag that filters on each and the type of its values.
SETTING_COLUMNS: dict[str, tuple[str, type]] = {
    "CType": ("--ctype", str), "Depth": ("--depth", int), "LR": ("--lr", float), "WD": ("--wd", float),
    "Optimizer": ("--optimizer", str), "Epochs": ("--epochs", int), "Selection": ("--selection", str),
    "Last": ("--last", int),
}


def stage_label(stage: Stage) -> str:
    """The repository's name of a stage: teacher, student t, PLL."""
    if stage == PLL:
        return "PLL"
    return "teacher" if stage == 0 else f"student {stage}"


def eta_key(value: float) -> float:
    """η as a dictionary key: 0.5 from the CSV and 0.50 from a flag are one column."""
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
                raise UsageError(f"{flag}: more than one plain value ({format_value(default)}, {text}); "
                                f"give one, or DATASET=VALUE per dataset")
            default = value
        elif not name or name in named:
            raise UsageError(f"{flag}: {'a dataset name is missing in' if not name else 'a second value for'} {token!r}")
        else:
            named[name] = value
    return PerDataset(default, tuple(named.items()))


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which rows to report; ``None`` (or an empty ``PerDataset``) keeps every value."""

    datasets: tuple[str, ...] = ()
    ctype: str | None = None
    depth: int | None = None
    lr: PerDataset = PerDataset()
    wd: PerDataset = PerDataset()
    optimizer: str | None = None
    epochs: int | None = None
    selection: str | None = None
    last: int | None = None

    def wanted(self, dataset: str) -> dict[str, object]:
        """Column → the value the rows of ``dataset`` must hold, for every filter that is set."""
        values = {"CType": self.ctype, "Depth": self.depth, "LR": self.lr.for_dataset(dataset),
                  "WD": self.wd.for_dataset(dataset), "Optimizer": self.optimizer, "Epochs": self.epochs,
                  "Selection": self.selection, "Last": self.last}
        return {column: value for column, value in values.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class Result:
    """One run: where it sits in a table (dataset, η, stage, seed), its accuracy and its setting."""

    dataset: str
    eta: float
    seed: int
    stage: Stage
    accuracy: float
    setting: tuple[tuple[str, object], ...]
    run: str

    def get(self, column: str) -> object | None:
        return dict(self.setting).get(column)


def _parse_stage(text: str) -> Stage:
    if text == PLL:
        return PLL
    if text.isdigit():
        return int(text)
    raise ValueError(f"Distill must be 0..t or {PLL}, got {text!r}")


def parse_row(row: dict[str, str], metric_column: str) -> Result:
    """A CSV row as a :class:`Result`; ``ValueError`` names the bad field."""
    stage = _parse_stage(row["Distill"].strip())
    setting = []
    for column, (_, kind) in SETTING_COLUMNS.items():
        # The teacher learns from no checkpoint: its Last is whatever the command carried, not a setting.
        if column == "Last" and stage == 0:
            continue
        try:
            setting.append((column, kind(row[column].strip())))
        except ValueError:
            raise ValueError(f"{column} must be a {kind.__name__}, got {row[column]!r}") from None
    numbers = {}
    for column in ("Corruption", metric_column):
        try:
            numbers[column] = float(row[column])
        except ValueError:
            raise ValueError(f"{column} must be a number, got {row[column]!r}") from None
        if not math.isfinite(numbers[column]):
            raise ValueError(f"{column} must be finite, got {row[column]!r}")
    if not row["Seed"].strip().lstrip("-").isdigit():
        raise ValueError(f"Seed must be an integer, got {row['Seed']!r}")
    if not row["Run"].strip():
        raise ValueError("Run is empty")
    return Result(dataset=row["Dataset"].strip(), eta=eta_key(numbers["Corruption"]), seed=int(row["Seed"]),
                  stage=stage, accuracy=numbers[metric_column], setting=tuple(setting), run=row["Run"].strip())


def read_results(paths: Sequence[Path], metric: str = "test") -> list[Result]:
    """Every run in the CSVs. A run folder (column Run) listed more than once counts once: its last row."""
    by_run: dict[str, Result] = {}
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"results file {path} not found (train_linear.py writes results/<ctype>.csv)")
        with open(path, newline="") as stream:
            reader = csv.DictReader(stream)
            missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"{path} is not a results CSV: no column {', '.join(missing)}")
            for row in reader:
                try:
                    result = parse_row(row, METRICS[metric])
                except ValueError as error:
                    raise UserError(f"{path}, line {reader.line_num}: {error}") from None
                earlier = by_run.pop(result.run, None)
                if earlier is not None and earlier.accuracy != result.accuracy:
                    log.warning("run %s is listed twice with different accuracies; using %s, line %d",
                                result.run, path, reader.line_num)
                by_run[result.run] = result
    return list(by_run.values())


@dataclasses.dataclass(frozen=True)
class DatasetResults:
    """The selected runs of one dataset: one setting, at most one run per (stage, η, seed)."""

    dataset: str
    setting: dict[str, object]
    accuracy: dict[tuple[Stage, float], dict[int, float]]  # (stage, η) → seed → accuracy (%)

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for by_seed in self.accuracy.values() for seed in by_seed})

    @property
    def etas(self) -> list[float]:
        return sorted({eta for _, eta in self.accuracy})

    @property
    def rounds(self) -> int:
        """The last student round present (0 when there is none)."""
        return max((stage for stage, _ in self.accuracy if stage != PLL), default=0)


def _matches(value: object, wanted: object) -> bool:
    if isinstance(wanted, float):
        return math.isclose(float(value), wanted, rel_tol=1e-9)  # type: ignore[arg-type]
    return value == wanted


def _apply_filters(dataset: str, rows: list[Result], wanted: dict[str, object]) -> list[Result]:
    for column, value in wanted.items():
        # Rows that do not carry the column (the teacher's Last) pass every filter on it.
        carrying = [row for row in rows if row.get(column) is not None]
        kept = [row for row in rows if row.get(column) is None or _matches(row.get(column), value)]
        if carrying and len(kept) == len(rows) - len(carrying):
            present = ", ".join(sorted({format_value(row.get(column)) for row in carrying}))
            raise UserError(f"{dataset}: no runs with {column} {format_value(value)} "
                            f"(its runs have {column} {present})")
        rows = kept
    return rows


def _one_setting(dataset: str, rows: list[Result]) -> dict[str, object]:
    values: dict[str, set] = {column: set() for column in SETTING_COLUMNS}
    for row in rows:
        for column, value in row.setting:
            values[column].add(value)
    mixed = {column: found for column, found in values.items() if len(found) > 1}
    if mixed:
        described = "; ".join(f"{column} {', '.join(sorted(map(format_value, found)))}"
                              for column, found in mixed.items())
        flags = " and ".join(SETTING_COLUMNS[column][0] for column in mixed)
        raise UserError(f"{dataset}: the selected runs hold more than one setting ({described}); "
                        f"select one with {flags}")
    return {column: next(iter(found)) for column, found in values.items() if found}


def dataset_results(dataset: str, rows: list[Result], wanted: dict[str, object]) -> DatasetResults:
    """Filter one dataset's runs and check they form one experiment: one setting, one run per (stage, η, seed)."""
    rows = _apply_filters(dataset, rows, wanted)
    setting = _one_setting(dataset, rows)
    accuracy: dict[tuple[Stage, float], dict[int, float]] = {}
    runs: dict[tuple[Stage, float, int], str] = {}
    for row in rows:
        other = runs.setdefault((row.stage, row.eta, row.seed), row.run)
        if other != row.run:
            raise UserError(f"{dataset}: η={row.eta:g} {stage_label(row.stage)} seed {row.seed} has two runs with "
                            f"the same CSV settings ({other}, {row.run}); they differ in a setting the CSV does not "
                            f"record (batch, gamma, momentum, weights, features, PLL q or k): keep one of them")
        accuracy.setdefault((row.stage, row.eta), {})[row.seed] = row.accuracy
    log.info("%s: %d runs selected", dataset, len(rows))
    return DatasetResults(dataset, setting, accuracy)


def select(results: list[Result], filters: Filters) -> list[DatasetResults]:
    """The runs of each dataset (``filters.datasets``, or every dataset in ``results``) that pass the filters."""
    present = sorted({row.dataset for row in results})
    datasets = list(filters.datasets) or present
    unknown = [name for name in datasets if name not in present]
    if unknown:
        raise UserError(f"no runs of dataset {', '.join(unknown)} in the results (datasets there: "
                        f"{', '.join(present) or 'none'})")
    for flag, per_dataset in (("--lr", filters.lr), ("--wd", filters.wd)):
        stray = [name for name, _ in per_dataset.named if name not in datasets]
        if stray:
            raise UsageError(f"{flag} names {', '.join(stray)}, which is not among the datasets reported "
                            f"({', '.join(datasets)})")
    return [dataset_results(name, [row for row in results if row.dataset == name], filters.wanted(name))
            for name in datasets]
