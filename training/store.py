"""The run store: the one place runs are found, verified, read and published.

Layout under the store's root (``-c/--checkpoint``, default ``./checkpoints``)::

    <run name>                  -> .runs/<run name>.<token>   a published run (a symlink)
    .runs/<run name>.<token>/   a run's files: while it trains (not yet published), or published
    .locks/<run name>.lock      held while a process trains that run

A run's name is its key made readable, ``<dataset>-<backbone>-<ctype>-eta<η>-seed<s>-<stage>-<hash>``
(:meth:`TrainConfig.run_name`). Its folder holds ``best.ckpt`` and ``last.ckpt`` (weights, config,
metrics, format version), ``log.csv`` (one row per epoch, appended while it trains, so it can be
watched), ``labels.npz`` (noisy labels and the train/validation split) and ``run.json`` — config,
metrics, provenance, and the size and SHA-256 of every other file.

Publication: a run trains in ``.runs/<name>.<token>/``; when its files are complete, run.json is
written last and a symlink ``<name>`` is renamed into place over whatever was there, so a run
becomes visible only complete and a replaced run never vanishes for a moment. Readers verify the
files against run.json; a run that fails is *damaged* and counts as not finished.

Runs written before this format (format 1: a plain folder named ``<dataset>-r<depth>-…``, no
checksums, no seeding or backbone) are still found and read, as *old format*; their missing fields
take their old meaning (:meth:`TrainConfig.from_record`).

Concurrency: one lock per run (:mod:`training.locks`), so different runs proceed in parallel and
two processes never train the same run at once; temporary folders whose writer is gone are swept.

What the store trusts: only what it created, inside itself. Its root is resolved once and may
itself be a symlink (the way to put a store on another disk). Every entry is examined with
``lstat`` and nothing is deleted through a symlink: a planted link is unlinked, its target left
alone. A run entry must be a link to a folder directly in ``.runs`` (or an old-format folder); one
leading elsewhere is a damaged run that is never written through, and ``.runs``/``.locks`` that are
symlinks are refused. A folder two entries point at is deleted with neither. run.json is checked
against one schema (types, finite metrics, nesting depth); anything else is a damaged run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import glob
import hashlib
import io
import json
import math
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Iterator

from training import locks
from training.config import TrainConfig
from utils.errors import UserError, naming
from utils.stages import Stage
from utils.testhooks import wrote
from utils.unreadable import DAMAGED_FILE

FORMAT = 2
RUN_JSON = "run.json"
LABELS = "labels.npz"
LOG = "log.csv"
CHECKPOINTS = {"best": "best.ckpt", "last": "last.ckpt"}
FILES = (CHECKPOINTS["best"], CHECKPOINTS["last"], LOG, LABELS)
RUNS_DIR, LOCKS_DIR = ".runs", ".locks"


class State(enum.Enum):
    COMPLETE = "complete"
    OLD_FORMAT = "old format"
    DAMAGED = "damaged"
    IN_PROGRESS = "in progress"
    MISSING = "missing"

    @property
    def finished(self) -> bool:
        return self in (State.COMPLETE, State.OLD_FORMAT)


def remove_tree(path: Path, strict: bool = False) -> None:
    """Remove a folder, a file or a symlink (the link, never its target: nothing inside a folder is followed
    either); with ``strict`` an ``OSError`` is raised, else ignored."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)  # removes symlinks inside as links (and is safe against swapped folders)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        if strict:
            raise


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A published run: where its files are and what its run.json says (config normalised to this format)."""

    name: str
    folder: Path  # the folder holding the files (the symlink's target for this format)
    config: TrainConfig
    metrics: dict
    teacher: str | None
    provenance: dict
    files: dict  # file name → {"size", "sha256"}; empty for old-format runs
    format: int

    @property
    def old_format(self) -> bool:
        return self.format < FORMAT

    def history(self) -> list[dict[str, float]]:
        """The per-epoch log, numbers as floats."""
        with open(self.folder / LOG, newline="") as stream:
            return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(stream)]

    def weights(self, which: str = "best"):
        """The head's weights (K, D) as a float32 tensor; ``UserError`` if the checkpoint is unusable."""
        import torch

        path = self.folder / CHECKPOINTS[which]
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            weights = checkpoint["weight"]
            ok = isinstance(weights, torch.Tensor) and weights.ndim == 2 and bool(torch.isfinite(weights).all())
        except DAMAGED_FILE as error:  # torch raises many types for a bad file
            raise UserError(f"checkpoint {path} is unreadable ({type(error).__name__})") from None
        if not ok:
            raise UserError(f"checkpoint {path} does not hold finite (K, D) weights")
        return weights.float()

    def labels(self, num_train: int, num_classes: int):
        """(noisy labels (N,), train rows, validation rows), checked against the dataset's sizes."""
        import numpy as np

        path = self.folder / LABELS
        try:
            with np.load(path, allow_pickle=False) as archive:
                noisy, train, val = archive["noisy"], archive["train_index"], archive["val_index"]
        except DAMAGED_FILE as error:
            raise UserError(f"cannot read {path} ({type(error).__name__})") from None
        for name, array, high in (
            ("noisy", noisy, num_classes),
            ("train_index", train, num_train),
            ("val_index", val, num_train),
        ):
            if (
                array.ndim != 1
                or not np.issubdtype(array.dtype, np.integer)
                or (array.size and (array.min() < 0 or array.max() >= high))
            ):
                raise UserError(f"{path}: {name} must be integers in [0, {high}), one per row")
        if noisy.shape != (num_train,):
            raise UserError(
                f"{path} holds {noisy.shape[0]} noisy labels but the dataset has {num_train} training samples"
            )
        return noisy.astype(np.int64), train.astype(np.int64), val.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Lookup:
    """What the store holds under one run's name: its state, the record when readable, and what is wrong."""

    name: str
    state: State
    record: RunRecord | None = None
    problem: str = ""
    config: TrainConfig | None = None  # what run.json says, when it is readable (also for a damaged run)


MAX_DEPTH = 6  # run.json nests config/metrics/provenance/files → one file → size/hash; room to spare
MAX_RUN_JSON = 1 << 20
METRICS = ("test_acc", "final_acc", "train_acc", "realized_corruption", "epochs", "best_epoch")


def _depth(value: object, limit: int) -> int:
    """How deeply ``value`` nests (a scalar is 0), counted without recursion and up to ``limit + 1``."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level + 1)
            if deepest > limit:
                return deepest
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _number(value: object) -> bool:
    """A finite JSON number (``true`` is not one, though Python calls it an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_record(raw: object) -> int:
    """Check a parsed run.json against the schema; returns its format, ``ValueError`` says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("its run.json is not a JSON object")
    if _depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(f"its run.json nests deeper than {MAX_DEPTH} levels")
    version = raw.get("format", 1)
    if type(version) is not int or version < 1 or version > FORMAT:
        raise ValueError(f"its run.json has format {version!r:.20}, which this version does not read")
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or any(not _number(metrics.get(key)) for key in METRICS):
        raise ValueError("its run.json lacks finite metrics")
    if any(value is not None and not _number(value) for value in metrics.values()):
        raise ValueError("its run.json holds a metric that is not a finite number")
    if any(type(metrics[key]) is not int or metrics[key] < 0 for key in ("epochs", "best_epoch")):
        raise ValueError("its run.json's epochs are not counts")
    config = raw.get("config")
    if not isinstance(config, dict):
        raise ValueError("its config is not a JSON object")
    for field in dataclasses.fields(TrainConfig):
        value = config.get(field.name)
        if field.name not in config or (version < 2 and field.name in ("stage", "weights")):
            continue  # absent fields are named by TrainConfig; format 1 stored the stage and weights differently
        wrong = {
            "str": not isinstance(value, str),
            "int": type(value) is not int,
            "float": not _number(value),
            "Stage": not isinstance(value, str),
        }.get(str(field.type), False)
        if wrong:
            raise ValueError(f"its config's {field.name} has the wrong type ({type(value).__name__})")
    if not isinstance(raw.get("teacher"), (str, type(None))) or not isinstance(
        raw.get("provenance"), (dict, type(None))
    ):
        raise ValueError("its run.json's teacher or provenance has the wrong type")
    if version >= 2:
        files = raw.get("files")
        if not isinstance(files, dict) or set(files) != set(FILES):
            raise ValueError("its run.json does not list its files")
        for described in files.values():
            if (
                not isinstance(described, dict)
                or type(described.get("size")) is not int
                or described["size"] < 0
                or not isinstance(described.get("sha256"), str)
                or len(described["sha256"]) != 64
            ):
                raise ValueError("its run.json describes a file without its size and SHA-256")
        if not isinstance(raw.get("run"), str):
            raise ValueError("its run.json does not name its run")
    return version


def _read_record(entry: Path, folder: Path) -> RunRecord:
    """Read, check and normalise the run.json in ``folder`` (the files of ``entry``); ``ValueError`` says what
    is wrong."""
    path = folder / RUN_JSON
    if not _is_regular(path):
        raise ValueError("it has no run.json" if not os.path.lexists(path) else "its run.json is not a regular file")
    try:
        with open(path, "rb") as stream:
            text = stream.read(MAX_RUN_JSON + 1)
        if len(text) > MAX_RUN_JSON:
            raise ValueError("too large")
        raw = json.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"its run.json is unreadable ({type(error).__name__})") from None
    version = check_record(raw)
    if version >= 2 and raw["run"] not in (entry.name, entry.name.rpartition(".")[0]):  # entry or its .runs folder
        raise ValueError(f"its run.json describes another run ({raw['run'][:80]!r})")
    config = TrainConfig.from_record(raw.get("config"), version)
    metrics = raw["metrics"]
    files = raw["files"] if version >= 2 else {}
    return RunRecord(
        name=entry.name,
        folder=folder,
        config=config,
        metrics=metrics,
        teacher=raw.get("teacher"),
        provenance=raw.get("provenance") or {},
        files=files,
        format=version,
    )


def verify(record: RunRecord) -> str:
    """'' if every file of the run is there and intact, else what is wrong."""
    if record.old_format:
        missing = [name for name in FILES if not _is_regular(record.folder / name)]
        return f"{', '.join(missing)} missing or not regular files" if missing else ""
    for name, expected in record.files.items():
        path = record.folder / name
        if not _is_regular(path):
            return f"{name} is missing" if not os.path.lexists(path) else f"{name} is not a regular file"
        size = os.lstat(path).st_size
        if size != expected.get("size"):
            return f"{name} has {size} bytes, run.json says {expected.get('size')}"
        if sha256(path) != expected.get("sha256"):
            return f"{name} does not match its SHA-256"
    return ""


class RunStore:
    """The runs under one root folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(self.root))  # resolved once: the root may be a symlink to another disk

    # -- what the store owns ------------------------------------------------------------------------
    def check_layout(self) -> None:
        """``UserError`` when ``.runs`` or ``.locks`` is a symlink: the store made them as folders, and never
        writes or deletes through a link (the root itself may be one)."""
        for name in (RUNS_DIR, LOCKS_DIR):
            path = self.root / name
            if os.path.islink(path):
                raise UserError(
                    f"{path} is a symlink to {os.readlink(path)[:200]}, not a folder this store made; remove the link "
                    f"(to put a store on another disk, make its root {self.root} the symlink)"
                )

    def folder_of(self, entry: Path) -> Path | None:
        """The run folder a published entry's files are in: an old-format folder itself, or the folder directly
        in ``.runs`` its symlink names; None for anything else (a link leading elsewhere, a file, a path that
        is not an entry of this store)."""
        if entry.name.startswith(".") or Path(os.path.realpath(entry.parent)) != self.real_root:
            return None
        if _is_folder(entry):
            return entry
        if not os.path.islink(entry):
            return None
        target = Path(os.path.realpath(entry))
        if target.parent == self.real_root / RUNS_DIR and _is_folder(target):
            return self.root / RUNS_DIR / target.name
        return None

    def _remove_run_folder(self, folder: Path | None, keep: str) -> None:
        """Delete a run folder unless another published entry than ``keep`` still points at it."""
        if folder is None or not _is_folder(folder):
            return
        real = os.path.realpath(folder)
        if any(
            os.path.realpath(other) == real
            for entry in self.entries()
            if entry.name != keep
            for other in [self.folder_of(entry)]
            if other is not None
        ):
            return
        remove_tree(folder, strict=True)

    # -- finding and reading ------------------------------------------------------------------------
    def entries(self) -> list[Path]:
        """Every published run (new-format symlinks and old-format folders), sorted by name."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(
            self.root / name
            for name in names
            if not name.startswith(".") and (os.path.islink(self.root / name) or _is_folder(self.root / name))
        )

    def entry(self, name: str) -> Path | None:
        """The published entry called ``name``, or None: only names that :meth:`entries` gives (no paths, no
        ``..``, no hidden names, not ``''``)."""
        if not isinstance(name, str) or not name or "/" in name or "\0" in name or name.startswith("."):
            return None
        entry = self.root / name
        return entry if entry in self.entries() else None

    def inspect(self, entry: Path) -> Lookup:
        """The state of one published entry: complete, old format or damaged (with the reason)."""
        config = None
        for attempt in range(3):  # a concurrent replacement can remove files between reading and verifying
            link = _link_text(entry)
            folder = self.folder_of(entry)
            try:
                if folder is None:
                    raise ValueError(
                        f"its entry is a symlink to {str(link)[:200]}, outside the store's {RUNS_DIR}"
                        if link is not None
                        else "its entry is not a run folder"
                    )
                record = _read_record(entry, folder)
            except ValueError as error:
                problem = str(error)
            else:
                config = record.config
                problem = verify(record)
                if not problem:
                    state = State.OLD_FORMAT if record.old_format else State.COMPLETE
                    return Lookup(entry.name, state, record, config=config)
            if link is None or _link_text(entry) == link:
                break  # not replaced while we read: the damage is real
        return Lookup(entry.name, State.DAMAGED, None, problem, config)

    def find(self, config: TrainConfig) -> Lookup:
        """The run ``config`` describes: complete, old format, damaged, in progress or missing."""
        self.check_layout()
        name = config.run_name()
        entry = self.root / name
        if os.path.lexists(entry):
            found = self.inspect(entry)
            if found.record is not None and found.record.config.key() != config.key():
                return Lookup(name, State.DAMAGED, None, "its run.json describes another run than its name")
            if found.state is State.DAMAGED:
                return found
            return found
        for old in self._old_format_candidates(config):
            found = self.inspect(old)
            if found.record is not None and found.record.config.key() == config.key():
                return found
        if os.path.lexists(self._lock_path(name)) and not locks.is_stale(self._lock_path(name)):
            return Lookup(name, State.IN_PROGRESS)
        return Lookup(name, State.MISSING)

    def _old_format_candidates(self, config: TrainConfig) -> list[Path]:
        if config.seeding != "independent" or not self.root.is_dir():
            return []  # every run before format 2 drew independent streams
        pattern = f"{glob.escape(config.dataset)}-r*-{config.ctype}-eta{config.corruption:g}-seed{config.seed}-"
        return sorted(p for p in self.root.glob(f"{pattern}{config.stage.slug}-*") if _is_folder(p))

    def similar(self, config: TrainConfig) -> list[RunRecord]:
        """Finished runs of the same dataset, ctype, η, seed and stage with other settings (for messages)."""
        pattern = (
            f"{glob.escape(config.dataset)}-*-{config.ctype}-eta{config.corruption:g}-seed{config.seed}-"
            f"{config.stage.slug}-*"
        )
        found = []
        for entry in sorted(self.root.glob(pattern)) if self.root.is_dir() else []:
            lookup = self.inspect(entry)
            if lookup.record is not None and lookup.record.config.key() != config.key():
                found.append(lookup.record)
        return found

    def records(self) -> list[RunRecord]:
        """Every finished run (complete or old format); damaged ones are left out."""
        return [lookup.record for lookup in map(self.inspect, self.entries()) if lookup.record is not None]

    def lookups(self) -> list[Lookup]:
        """Every entry's state, plus the runs in progress (for inspection)."""
        self.check_layout()
        found = [self.inspect(entry) for entry in self.entries()]
        published = {lookup.name for lookup in found}
        for lock_file in sorted((self.root / LOCKS_DIR).glob("*.lock")) if _is_folder(self.root / LOCKS_DIR) else []:
            name = lock_file.name[: -len(".lock")]
            if name not in published and not locks.is_stale(lock_file):
                found.append(Lookup(name, State.IN_PROGRESS))
        return found

    # -- locks ----------------------------------------------------------------------------------------
    def _lock_path(self, name: str) -> Path:
        return self.root / LOCKS_DIR / f"{name}.lock"

    def try_lock(self, config: TrainConfig) -> locks.Lock | None:
        self.check_layout()
        return locks.try_lock(self._lock_path(config.run_name()))

    def lock_holder(self, config: TrainConfig) -> dict | None:
        """The owner of the run's lock if a live process holds it, else None; ``described`` says who and since
        when."""
        path = self._lock_path(config.run_name())
        if not os.path.lexists(path) or locks.is_stale(path):
            return None
        return {"host": "?", "pid": "?", **locks.read_owner(path), "described": locks.describe(path)}

    # -- writing ----------------------------------------------------------------------------------------
    def begin(self, config: TrainConfig, lock: locks.Lock) -> "RunWriter":
        """A temporary folder for a run this process holds the lock of."""
        self.check_layout()
        entry = self.root / config.run_name()
        if os.path.islink(entry) and self.folder_of(entry) is None:
            raise UserError(
                f"{entry} is a symlink to {os.readlink(entry)[:200]}, outside the store's {RUNS_DIR}; the store does "
                f"not replace what it did not make: remove the link (python3 runs.py clean --damaged -c {self.root})"
            )
        folder = self.root / RUNS_DIR / f"{config.run_name()}.{lock.token}"
        for attempt in range(3):  # another process may remove an empty .runs between the two mkdirs
            try:
                folder.mkdir(parents=True)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        wrote("mkdir")
        return RunWriter(self, config, folder)

    def publish(self, writer: "RunWriter", content: dict) -> RunRecord:
        """Write run.json (with every file's size and SHA-256) and make the run visible; returns its record."""
        files = {
            name: {"size": (writer.folder / name).stat().st_size, "sha256": sha256(writer.folder / name)}
            for name in FILES
        }
        document = {"format": FORMAT, "run": writer.config.run_name(), **content, "files": files}
        _write_file(writer.folder / RUN_JSON, (json.dumps(document, indent=2, default=_json_default) + "\n").encode())
        name = writer.config.run_name()
        entry = self.root / name
        replaced = self.folder_of(entry) if os.path.islink(entry) else None  # never a folder outside .runs
        old = self.find(writer.config)
        link = self.root / f".{name}.{uuid.uuid4().hex[:8]}.link"
        os.symlink(os.path.join(RUNS_DIR, writer.folder.name), link)
        try:
            os.replace(link, entry)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            raise
        wrote("publish")
        if replaced is not None and replaced != writer.folder:
            with contextlib.suppress(OSError):
                self._remove_run_folder(replaced, keep=name)  # not when another run's entry points at it
            wrote("remove replaced")
        if old.record is not None and old.record.old_format and _is_folder(old.record.folder):
            remove_tree(old.record.folder)  # superseded by the run just published
            wrote("remove old format")
        writer.published = True
        found = self.inspect(entry)
        if found.record is None:
            raise UserError(f"the run just published in {entry} does not read back: {found.problem}")
        return found.record

    def sweep(self, strict: bool = False) -> list[Path]:
        """Remove what dead writers left: unpublished run folders whose lock is not held by their writer,
        stale locks and temporary links (links planted in ``.runs`` or ``.locks`` are unlinked, their targets
        left alone). Returns what was removed; with ``strict`` a refusal raises."""
        self.check_layout()
        removed: list[Path] = []
        published = self._published_folders()
        unpublished = [
            folder
            for folder in _children(self.root / RUNS_DIR)
            if os.path.islink(folder) or os.path.realpath(folder) not in published
        ]
        orphans = []
        for folder in unpublished:
            name, _, token = folder.name.rpartition(".")
            lock_path = self._lock_path(name)
            owner = locks.read_owner(lock_path) if name else {}
            if owner.get("token") == token and not os.path.islink(folder) and not locks.is_stale(lock_path):
                continue  # its writer is alive and still training it
            orphans.append(folder)
        # A writer publishes before it releases its lock: a folder whose lock was free a moment ago and that
        # is published now is a run, not a leftover.
        published = self._published_folders()
        for folder in orphans:
            if os.path.islink(folder) or os.path.realpath(folder) not in published:
                remove_tree(folder, strict)
                removed.append(folder)
        for lock_path in _children(self.root / LOCKS_DIR):
            if ".lock" in lock_path.name and (
                ".lock.broken-" in lock_path.name or not _is_regular(lock_path) or locks.is_stale(lock_path)
            ):
                remove_tree(lock_path, strict)
                removed.append(lock_path)
        for leftover in _children(self.root):
            if (
                leftover.name.startswith(".")
                and leftover.name.endswith(".link")
                and os.path.islink(leftover)
                and _age(leftover) > locks.WRITE_GRACE_S  # a younger one may be a publisher's, about to be renamed
            ):
                remove_tree(leftover, strict)
                removed.append(leftover)
        return removed

    def _published_folders(self) -> set[str]:
        return {
            os.path.realpath(folder)
            for entry in self.entries()
            if os.path.islink(entry)
            for folder in [self.folder_of(entry)]
            if folder is not None
        }

    def remove(self, name: str) -> None:
        """Unpublish and delete one run (``runs.py clean --damaged``): its entry, and its folder when it is
        the store's own and no other entry points at it; refusals raise."""
        self.check_layout()
        entry = self.root / name
        folder = self.folder_of(entry) if os.path.islink(entry) else None
        remove_tree(entry, strict=True)
        self._remove_run_folder(folder, keep=name)


def _age(path: Path) -> float:
    """Seconds since ``path`` (a link itself, not its target) was last modified; 0 when it is gone."""
    try:
        return abs(time.time() - os.lstat(path).st_mtime)
    except OSError:
        return 0.0


def _link_text(entry: Path) -> str | None:
    try:
        return os.readlink(entry)
    except OSError:
        return None


def _children(folder: Path) -> list[Path]:
    """What a folder of the store holds, sorted ([] when it is absent, e.g. removed by a concurrent writer)."""
    try:
        return sorted(folder / name for name in os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []


class RunWriter:
    """A run being written in its temporary folder; nothing in it is visible until :meth:`RunStore.publish`."""

    def __init__(self, store: RunStore, config: TrainConfig, folder: Path):
        self.store, self.config, self.folder = store, config, folder
        self.published = False
        self._log_columns: list[str] | None = None

    def append_log(self, row: dict[str, float]) -> None:
        """One epoch's row of log.csv, appended and flushed (watchable while the run trains)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
        if self._log_columns is None:
            self._log_columns = list(row)
            writer.writeheader()
        writer.writerow(row)
        with naming(self.folder / LOG), open(self.folder / LOG, "a") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
        wrote("log")

    def write_checkpoint(self, which: str, weights, metrics: dict, epoch: int) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(
            {
                "format": FORMAT,
                "weight": weights.detach().cpu().float().contiguous(),
                "config": self.config.to_dict(),
                "metrics": metrics,
                "epoch": epoch,
            },
            buffer,
        )
        _write_file(self.folder / CHECKPOINTS[which], buffer.getvalue())

    def write_labels(self, noisy, train_index, val_index) -> None:
        import numpy as np

        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            noisy=np.asarray(noisy, dtype=np.int64),
            train_index=np.asarray(train_index, dtype=np.int64),
            val_index=np.asarray(val_index, dtype=np.int64),
        )
        _write_file(self.folder / LABELS, buffer.getvalue())

    def discard(self) -> None:
        if not self.published:
            remove_tree(self.folder)
            with contextlib.suppress(OSError):
                self.folder.parent.rmdir()  # .runs goes too if nothing else is in it


def _write_file(path: Path, data: bytes) -> None:
    with naming(path), open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    wrote(path.name)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Stage):
        return obj.slug
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def writing(store: RunStore, config: TrainConfig, lock: locks.Lock) -> Iterator[RunWriter]:
    """A :class:`RunWriter` whose folder is removed unless the run was published (also on Ctrl-C)."""
    writer = store.begin(config, lock)
    try:
        yield writer
    finally:
        writer.discard()
