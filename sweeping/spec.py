"""A sweep described as data: a TOML file read into jobs, checked before anything runs.

The file (see ``sweeps/paper.toml``) names the device and precision (fixed, so run names do not
depend on the submitting host), the backbone, seeds, rates, rounds and training settings; a table
per dataset (lr, and wd as a number or as named settings such as base/small/big); and a table per
grid (ctype, the wd setting, optionally its datasets and any setting it changes). It expands to an
extraction job per image dataset and a chain job per (grid, dataset) that waits only for its own
dataset's extraction. Every value goes through the checks the CLI applies (TrainConfig.validate,
DataOptions.validate); a mistake is one :class:`UsageError` naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from data.registry import DATASET_NAMES, IMAGE_DATASETS, DataOptions
from sweeping import schema
from sweeping.resources import check_resources
from training.config import TrainConfig
from training.jobs import ChainJob, ExtractJob, JobState
from training.settings import SETTINGS, chain_settings, default_lr_wd
from utils import checks
from utils.cli import DEFAULT_STORE
from utils.device import DEVICE_CHOICES
from utils.errors import UsageError, UserError
from utils.stages import BASELINES, Stage

# Settings a grid names itself (ctype) or per dataset (lr, wd); every other setting of the table may be set at
# the top level or per grid, under its flag's name (train_batch, which, val_fraction …).
GRID_SETTINGS = ("ctype", "lr", "wd")
CHAIN_KEYS = ("seeds", "corruption", "rounds", "baselines")
FILE_KEYS = ("name", "device", "precision", "depth", "arch", "weights", "transform")
DATASET_KEYS = ("lr", "wd")


def train_keys() -> tuple[str, ...]:
    """The keys of the settings table a sweep may set at the top level or per grid (read each time)."""
    return tuple(s.key for s in chain_settings() if s.name not in GRID_SETTINGS)


def top_keys() -> tuple[str, ...]:
    return (*FILE_KEYS, *CHAIN_KEYS, *train_keys())


def grid_keys() -> tuple[str, ...]:
    return ("datasets", *GRID_SETTINGS, *CHAIN_KEYS, *train_keys())


def _setting_of_key(key: str):
    return next((s for s in SETTINGS.values() if s.key == key), None)


RESOURCE_KEYS = ("cpus_per_job", "gpus_per_job", "mem_gb", "time_min", "partition")
TABLES = ("resources", "datasets", "grids")
FIXED_DEVICES, FIXED_PRECISIONS = ("cpu", "cuda"), ("fp32", "fp16", "bf16")
# sweep.py --device may also say auto: the precision stays fixed, so the run names do not depend on the host.
OVERRIDE_DEVICES = DEVICE_CHOICES


@dataclasses.dataclass(frozen=True)
class Resources:
    """What each job asks of a scheduler (Ray, SLURM)."""

    cpus_per_job: int = 1
    gpus_per_job: int = 0
    mem_gb: int | None = None
    time_min: int = 60
    partition: str | None = None


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """A job with its name in listings and the name of the job it waits for."""

    name: str
    work: ExtractJob | ChainJob
    needs: str | None = None
    grid: str = ""

    @property
    def is_extraction(self) -> bool:
        return isinstance(self.work, ExtractJob)

    def state(self) -> JobState:
        try:
            return self.work.state()
        except UserError as error:  # e.g. an imagefolder that is not there yet
            return JobState("missing", 0, 0, " ".join(str(error).split()))


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    device: str
    jobs: tuple[SweepJob, ...]
    resources: Resources


@dataclasses.dataclass(frozen=True)
class Places:
    """Where a sweep reads and writes (the CLI's flags)."""

    store: Path = DEFAULT_STORE
    csv_dir: Path = Path("results")
    data_root: Path | None = None
    feature_root: Path | None = None


def read_toml(path: Path) -> dict:
    """The file as a dict; a missing file is a UserError, bad syntax a UsageError with its line."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {error.start}); a sweep file is TOML, written as UTF-8"
        ) from None


def _keys(where: str, table: object, allowed: tuple[str, ...]) -> dict:
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}")
    return table


def _typed(where: str, key: str, value: object, kind, many: bool = False):
    """``value`` checked to be of ``kind`` (a list of them with ``many``); bool is not a number here."""
    kinds = (int, float) if kind is float else (kind,)
    ok = lambda v: isinstance(v, kinds) and not isinstance(v, bool)  # noqa: E731
    if many:
        if not isinstance(value, list) or not value or not all(map(ok, value)):
            raise UsageError(f"{where}: {key} must be a non-empty list of {kind.__name__}s, got {value!r}")
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise UsageError(f"{where}: {key} names {', '.join(map(str, repeated))} twice; give each value once")
        return [float(v) for v in value] if kind is float else list(value)
    if not ok(value):
        raise UsageError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


# The types of the keys that are not settings of the table (those take the table's).
KINDS = {
    "name": str,
    "device": str,
    "precision": str,
    "depth": int,
    "arch": str,
    "weights": str,
    "transform": str,
    "seeds": int,
    "corruption": float,
    "rounds": int,
    "baselines": str,
    "datasets": str,
    "cpus_per_job": int,
    "gpus_per_job": int,
    "mem_gb": int,
    "time_min": int,
    "partition": str,
}
LISTS = {"seeds", "corruption", "baselines", "datasets"}


def _kind(key: str) -> type:
    setting = _setting_of_key(key) if key not in KINDS else None
    if setting is None:
        return KINDS[key]
    return str if setting.labels is not None else setting.kind


def _values(where: str, table: dict, skip: tuple[str, ...] = ()) -> dict:
    return {key: _typed(where, key, value, _kind(key), key in LISTS) for key, value in table.items() if key not in skip}


def load_sweep(
    path: Path,
    places: Places = Places(),
    only: list[str] | None = None,
    epochs: int | None = None,
    cpus_per_job: int | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> Sweep:
    """Read, check and expand the sweep file ``path`` (only the grids named in ``only``, if given); ``epochs``,
    ``cpus_per_job``, ``device`` and ``precision`` replace the file's values (sweep.py's flags)."""
    path = Path(path)
    raw = read_toml(path)
    where = str(path)
    schema.check_structure(where, raw)
    _keys(where, raw, (*top_keys(), *TABLES))
    top = _values(where, {k: v for k, v in raw.items() if k not in TABLES})
    for key, choices in (("device", FIXED_DEVICES), ("precision", FIXED_PRECISIONS)):
        if top.get(key) not in choices:
            raise UsageError(
                f"{where}: a sweep fixes its {key}: give {key} = one of {', '.join(choices)}, got {top.get(key)!r}"
            )
    for key, value, choices in (("device", device, OVERRIDE_DEVICES), ("precision", precision, FIXED_PRECISIONS)):
        if value is not None:
            top[key] = checks.choice(f"--{key}", value, choices)
    if "depth" in top and "arch" in top:
        raise UsageError(f"{where}: give depth or arch, not both")
    resources = Resources(
        **_values(f"{where} [resources]", _keys(f"{where} [resources]", raw.get("resources", {}), RESOURCE_KEYS))
    )
    check_resources(dataclasses.asdict(resources), f"{where} [resources]")
    if cpus_per_job is not None:
        resources = dataclasses.replace(resources, cpus_per_job=cpus_per_job)
    datasets = _keys(f"{where} [datasets]", raw.get("datasets", {}), DATASET_NAMES)
    grids = _keys(f"{where} [grids]", raw.get("grids", {}), tuple(raw.get("grids", {})))
    if not grids:
        raise UsageError(f"{where}: no grids; add a [grids.NAME] table")
    for name in only or []:
        if name not in grids:
            raise UsageError(f"--only {name}: {where} has no grid {name!r}; its grids: {', '.join(grids)}")
    options = DataOptions(
        **{
            key: value
            for key, value in (("data_root", places.data_root), ("feature_root", places.feature_root))
            if value is not None
        },
        device=top["device"],
        precision=top["precision"],
        depth=top.get("depth", 34 if "arch" not in top else None),
        arch=top.get("arch"),
        weights=top.get("weights", "default"),
        transform=top.get("transform"),
        workers=0 if resources.cpus_per_job == 1 else resources.cpus_per_job,
    )
    try:
        options.validate()
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None
    jobs: dict[str, SweepJob] = {}
    for grid in only or list(grids):
        for job in _grid_jobs(
            f"{where} [grids.{grid}]",
            grid,
            _keys(f"{where} [grids.{grid}]", grids[grid], grid_keys()),
            top,
            datasets,
            options,
            places,
            resources,
            epochs,
            where,
        ):
            jobs.setdefault(job.name, job)
    ordered = sorted(jobs.values(), key=lambda job: not job.is_extraction)  # extractions first, else file order
    return Sweep(schema.sweep_name(where, top.get("name"), path), path, top["device"], tuple(ordered), resources)


def _grid_jobs(
    where: str,
    grid: str,
    table: dict,
    top: dict,
    datasets: dict,
    options: DataOptions,
    places: Places,
    resources: Resources,
    epochs: int | None,
    file: str,
) -> list[SweepJob]:
    values = {
        **{k: v for k, v in top.items() if k in (*CHAIN_KEYS, *train_keys())},
        **_values(where, table, skip=("wd",)),
    }
    if "wd" in table:
        if not isinstance(table["wd"], (str, int, float)) or isinstance(table["wd"], bool):
            raise UsageError(
                f"{where}: wd must be a number or the name of a dataset's weight decay, got {table['wd']!r}"
            )
        values["wd"] = table["wd"]
    if "ctype" not in values:
        raise UsageError(f"{where}: give its ctype (sym, asym or cc)")
    names = values.get("datasets") or list(datasets)
    if not names:
        raise UsageError(f"{where}: no datasets; list them in datasets = [...] or add [datasets.NAME] tables")
    for name in names:
        if name not in DATASET_NAMES:
            raise UsageError(f"{where}: unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    baselines = values.get("baselines", [])
    for name in baselines:
        if name not in (*BASELINES, "all"):
            raise UsageError(f"{where}: unknown baseline {name!r}; choose from: {', '.join(BASELINES)}, all")
    baselines = list(BASELINES) if "all" in baselines else baselines
    rounds = values.get("rounds", 4)
    if rounds < 0:
        raise UsageError(f"{where}: rounds must be at least 0, got {rounds}")
    from training.chain import chain_stages

    stages = tuple(chain_stages(rounds, baselines=baselines))
    seeds, rates = values.get("seeds", [0, 1, 2]), values.get("corruption", [0.3, 0.5, 0.7])
    found = []
    for name in names:
        lr, wd = _lr_wd(where, file, name, values, datasets)
        settings = {key: setting.default for key, setting in SETTINGS.items()}
        for key in train_keys():
            if key in values:
                setting = _setting_of_key(key)
                settings[setting.name] = _parse(where, setting, values[key])
        if epochs is not None:
            settings["epochs"] = epochs
        settings.update(ctype=values["ctype"], corruption=rates[0], seed=seeds[0], lr=lr, wd=wd)
        template = TrainConfig.build(
            settings, dataset=name, feature_source="", backbone="", weights="", stage=Stage.teacher()
        )
        for stage in stages:
            for eta in rates:
                for seed in seeds:
                    _check(where, dataclasses.replace(template, corruption=eta, seed=seed, stage=stage))
        extraction = None
        if name in IMAGE_DATASETS:
            extraction = SweepJob(f"extract {name}", ExtractJob(name, options, resources.cpus_per_job))
            found.append(extraction)
        chain = ChainJob(
            dataset=name,
            options=options,
            settings=template,
            seeds=tuple(seeds),
            rates=tuple(rates),
            stages=stages,
            store=places.store,
            csv=places.csv_dir / f"{values['ctype']}.csv",
            threads=resources.cpus_per_job,
        )
        found.append(
            SweepJob(
                f"{grid}/{name}: {values['ctype']} lr {lr:g} wd {wd:g}",
                chain,
                extraction.name if extraction else None,
                grid,
            )
        )
    return found


def _lr_wd(where: str, file: str, name: str, values: dict, datasets: dict) -> tuple[float, float]:
    """The grid's lr and wd for one dataset: the grid's own numbers, else the dataset's, else the CLI's defaults."""
    entry = _keys(f"{file} [datasets.{name}]", datasets.get(name, {}), DATASET_KEYS)
    default_lr, default_wd = default_lr_wd(name)
    lr = values.get("lr", entry.get("lr", default_lr))
    lr = _typed(f"{file} [datasets.{name}]", "lr", lr, float)
    wd = entry.get("wd", default_wd)
    if "wd" in values:
        if isinstance(values["wd"], str):
            if not isinstance(wd, dict) or values["wd"] not in wd:
                named = ", ".join(wd) if isinstance(wd, dict) else "none"
                raise UsageError(
                    f"{where}: wd = {values['wd']!r}, but [datasets.{name}] names no such weight decay "
                    f"(it names: {named})"
                )
            wd = wd[values["wd"]]
        else:
            wd = values["wd"]
    elif isinstance(wd, dict):
        raise UsageError(
            f'{where}: [datasets.{name}] names weight decays ({", ".join(wd)}); choose one with wd = "NAME"'
        )
    return lr, _typed(f"{file} [datasets.{name}]", "wd", wd, float)


def _in_file_terms(text: str) -> str:
    """An error message naming the file's keys, not the CLI's flags (longest flags first: --pll-k before --q)."""
    flags = [(s.flag, s.key) for s in SETTINGS.values()] + [(f"--{key}", key) for key in CHAIN_KEYS]
    for flag, key in sorted(flags, key=lambda pair: -len(pair[0])):
        text = text.replace(flag, key)
    return text


def _parse(where: str, setting, value: object) -> object:
    """A file's value as stored (``which = "last"`` → 1)."""
    try:
        return setting.parse(value)
    except UsageError as error:
        raise UsageError(f"{where}: {_in_file_terms(str(error))}") from None


def _check(where: str, config: TrainConfig) -> None:
    try:
        config.validate()
    except UsageError as error:
        raise UsageError(f"{where}: {_in_file_terms(str(error))}") from None
