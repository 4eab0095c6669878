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
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import hashlib
import io
import json
import os
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
    """Remove a run folder (or a symlink to one); with ``strict`` an ``OSError`` is raised, else ignored."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
            return
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        if strict:
            raise


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


def _read_record(entry: Path) -> RunRecord:
    """Read and normalise the run.json under ``entry``; ``ValueError`` says what is wrong."""
    folder = entry.resolve() if entry.is_symlink() else entry
    try:
        raw = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError("it has no run.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"its run.json is unreadable ({type(error).__name__})") from None
    if not isinstance(raw, dict):
        raise ValueError("its run.json is not a JSON object")
    version = raw.get("format", 1)
    if not isinstance(version, int) or version < 1 or version > FORMAT:
        raise ValueError(f"its run.json has format {version!r}, which this version does not read")
    config = TrainConfig.from_record(raw.get("config"), version)
    metrics = raw.get("metrics")
    needed = ("test_acc", "final_acc", "train_acc", "realized_corruption", "epochs", "best_epoch")
    if not isinstance(metrics, dict) or any(not isinstance(metrics.get(key), (int, float)) for key in needed):
        raise ValueError("its run.json lacks metrics")
    files = raw.get("files", {}) if version >= 2 else {}
    if version >= 2 and (not isinstance(files, dict) or set(files) != set(FILES)):
        raise ValueError("its run.json does not list its files")
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
        missing = [name for name in FILES if not (record.folder / name).is_file()]
        return f"{', '.join(missing)} missing" if missing else ""
    for name, expected in record.files.items():
        path = record.folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        if size != expected.get("size"):
            return f"{name} has {size} bytes, run.json says {expected.get('size')}"
        if sha256(path) != expected.get("sha256"):
            return f"{name} does not match its SHA-256"
    return ""


class RunStore:
    """The runs under one root folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- finding and reading ------------------------------------------------------------------------
    def entries(self) -> list[Path]:
        """Every published run (new-format symlinks and old-format folders), sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.is_symlink()))

    def inspect(self, entry: Path) -> Lookup:
        """The state of one published entry: complete, old format or damaged (with the reason)."""
        config = None
        for attempt in range(3):  # a concurrent replacement can remove files between reading and verifying
            try:
                record = _read_record(entry)
            except ValueError as error:
                problem = str(error)
            else:
                config = record.config
                problem = verify(record)
                if not problem:
                    state = State.OLD_FORMAT if record.old_format else State.COMPLETE
                    return Lookup(entry.name, state, record, config=config)
            if not entry.is_symlink() or attempt == 2:
                break
            time.sleep(0.05)
        return Lookup(entry.name, State.DAMAGED, None, problem, config)

    def find(self, config: TrainConfig) -> Lookup:
        """The run ``config`` describes: complete, old format, damaged, in progress or missing."""
        name = config.run_name()
        entry = self.root / name
        if entry.is_symlink() or entry.exists():
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
        if (self.root / LOCKS_DIR / f"{name}.lock").exists() and not locks.is_stale(self._lock_path(name)):
            return Lookup(name, State.IN_PROGRESS)
        return Lookup(name, State.MISSING)

    def _old_format_candidates(self, config: TrainConfig) -> list[Path]:
        if config.seeding != "independent" or not self.root.is_dir():
            return []  # every run before format 2 drew independent streams
        pattern = f"{config.dataset}-r*-{config.ctype}-eta{config.corruption:g}-seed{config.seed}-{config.stage.slug}-*"
        return sorted(p for p in self.root.glob(pattern) if p.is_dir() and not p.is_symlink())

    def similar(self, config: TrainConfig) -> list[RunRecord]:
        """Finished runs of the same dataset, ctype, η, seed and stage with other settings (for messages)."""
        pattern = f"{config.dataset}-*-{config.ctype}-eta{config.corruption:g}-seed{config.seed}-{config.stage.slug}-*"
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
        found = [self.inspect(entry) for entry in self.entries()]
        published = {lookup.name for lookup in found}
        for lock_file in sorted((self.root / LOCKS_DIR).glob("*.lock")) if (self.root / LOCKS_DIR).is_dir() else []:
            name = lock_file.name[: -len(".lock")]
            if name not in published and not locks.is_stale(lock_file):
                found.append(Lookup(name, State.IN_PROGRESS))
        return found

    # -- locks ----------------------------------------------------------------------------------------
    def _lock_path(self, name: str) -> Path:
        return self.root / LOCKS_DIR / f"{name}.lock"

    def try_lock(self, config: TrainConfig) -> locks.Lock | None:
        return locks.try_lock(self._lock_path(config.run_name()))

    def lock_holder(self, config: TrainConfig) -> dict | None:
        """The owner of the run's lock if a live process holds it, else None."""
        path = self._lock_path(config.run_name())
        if not path.exists() or locks.is_stale(path):
            return None
        return locks.read_owner(path) or {"host": "?", "pid": "?"}

    # -- writing ----------------------------------------------------------------------------------------
    def begin(self, config: TrainConfig, lock: locks.Lock) -> "RunWriter":
        """A temporary folder for a run this process holds the lock of."""
        folder = self.root / RUNS_DIR / f"{config.run_name()}.{lock.token}"
        folder.mkdir(parents=True)
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
        replaced = entry.resolve() if entry.is_symlink() else None
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
            remove_tree(replaced)
            wrote("remove replaced")
        if old.record is not None and old.record.old_format:
            remove_tree(old.record.folder)  # superseded by the run just published
            wrote("remove old format")
        writer.published = True
        found = self.inspect(entry)
        if found.record is None:
            raise RuntimeError(f"the run just published does not read back: {found.problem}")
        return found.record

    def sweep(self, strict: bool = False) -> list[Path]:
        """Remove what dead writers left: unpublished run folders whose lock is not held by their writer,
        stale locks and temporary links. Returns what was removed; with ``strict`` a refusal raises."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        published = {entry.resolve() for entry in self.entries() if entry.is_symlink()}
        runs_dir = self.root / RUNS_DIR
        for folder in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
            if folder.resolve() in published:
                continue
            name, _, token = folder.name.rpartition(".")
            lock_path = self._lock_path(name)
            owner = locks.read_owner(lock_path) if lock_path.exists() else {}
            if owner.get("token") == token and not locks.is_stale(lock_path):
                continue  # its writer is alive and still training it
            remove_tree(folder, strict)
            removed.append(folder)
        for lock_path in sorted((self.root / LOCKS_DIR).glob("*.lock*")) if (self.root / LOCKS_DIR).is_dir() else []:
            if ".lock.broken-" in lock_path.name or locks.is_stale(lock_path):
                remove_tree(lock_path, strict)
                removed.append(lock_path)
        for leftover in self.root.glob(".*.link"):
            remove_tree(leftover, strict)
            removed.append(leftover)
        return removed

    def remove(self, name: str) -> None:
        """Unpublish and delete one run (``runs.py clean --damaged``); refusals raise."""
        entry = self.root / name
        target = entry.resolve() if entry.is_symlink() else None
        remove_tree(entry, strict=True)
        if target is not None:
            remove_tree(target, strict=True)


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
