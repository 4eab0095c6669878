"""The results CSV: an export of the run store, one row per run, upserted under a lock.

Columns: today's seventeen in their order, then the ones added since (only ever appended), so an
older CSV still reads and an older reader still finds its columns. Writers take the CSV's lock
(:mod:`training.locks`, safe on a shared filesystem), read the file, replace the rows of the runs
they export and write the whole file atomically. A file whose header is ours but whose rows are
damaged (cut mid-row, unparsable) is rebuilt from the store; a file that is not ours is never
overwritten. Text cells a spreadsheet would run as a formula get a leading ``'`` (OWASP, see
:mod:`utils.escaping`) and read back as they were. Standard library only.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable

from training import locks
from utils import atomic
from utils.errors import UserError
from utils.escaping import csv_cell, csv_value
from utils.testhooks import wrote

LEGACY_COLUMNS = (
    "Dataset",
    "Depth",
    "CType",
    "Corruption",
    "Seed",
    "LR",
    "WD",
    "Distill",
    "Train Acc.",
    "Test Acc.",
    "Final Acc.",
    "Realized Corruption",
    "Epochs",
    "Optimizer",
    "Last",
    "Selection",
    "Run",
)
COLUMNS = (*LEGACY_COLUMNS, "Backbone", "Seeding", "ECE", "Corrected", "Kept", "Candidates")
NUMERIC = ("Corruption", "Seed", "LR", "WD", "Train Acc.", "Test Acc.", "Final Acc.", "Realized Corruption", "Epochs")


def result_row(record) -> dict[str, object]:
    """The CSV row of a run (a :class:`training.store.RunRecord`). Accuracies in percent."""
    config, metrics = record.config, record.metrics
    return {
        "Dataset": config.dataset,
        "Depth": config.depth if config.depth is not None else "",
        "CType": config.ctype,
        "Corruption": config.corruption,
        "Seed": config.seed,
        "LR": config.lr,
        "WD": config.wd,
        "Distill": config.stage.distill,
        "Train Acc.": round(metrics["train_acc"], 4),
        "Test Acc.": round(metrics["test_acc"], 4),
        "Final Acc.": round(metrics["final_acc"], 4),
        "Realized Corruption": round(metrics["realized_corruption"], 6),
        "Epochs": metrics["epochs"],
        "Optimizer": config.optimizer,
        "Last": config.last,
        "Selection": config.select,
        "Run": record.name,
        "Backbone": config.backbone,
        "Seeding": config.seeding,
        **{
            column: _percent(metrics.get(key))
            for column, key in (
                ("ECE", "ece"),
                ("Corrected", "corrected"),
                ("Kept", "kept"),
                ("Candidates", "candidates"),
            )
        },
    }


def _percent(value) -> object:
    """A metric in percent rounded for the CSV; empty where a run has none (older runs, undefined)."""
    return "" if value is None else round(value, 4)


class ForeignFile(UserError):
    pass


def _header_problem(header: list[str]) -> str:
    """'' if ``header`` is this project's (this version's or an earlier one's), else what is wrong."""
    if len(header) < len(LEGACY_COLUMNS) or tuple(header) != COLUMNS[: len(header)]:
        return f"its header ({', '.join(header[:4])}{', …' if len(header) > 4 else ''}) is not a results header"
    return ""


def read_csv(path: Path) -> tuple[list[dict[str, str]], bool]:
    """(rows, damaged): the rows of our results CSV at ``path``; ``ForeignFile`` if it is not ours."""
    path = Path(path)
    if not path.exists():
        return [], False
    if path.is_dir():
        raise UserError(f"results CSV {path} is a folder; give a file path with --csv")
    atomic.refuse_special(path, "--csv")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ForeignFile(
            f"{path} is not a results CSV written by this project (not UTF-8 text); it is left as it "
            f"is: choose another file with --csv"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return [], False  # an empty file: ours to write
    problem = _header_problem(header)
    if problem:
        raise ForeignFile(
            f"{path} is not a results CSV written by this project ({problem}); it is left as it is: "
            f"choose another file with --csv"
        )
    rows, damaged = [], False
    for cells in reader:
        fields = [csv_value(cell) for cell in cells]
        if len(fields) != len(header) or not _row_ok(dict(zip(header, fields))):
            damaged = True
            continue
        rows.append(dict(zip(header, fields)))
    return rows, damaged or not text.endswith("\n")


def _row_ok(row: dict[str, str]) -> bool:
    if not row.get("Run", "").strip() or not row.get("Dataset", "").strip():
        return False
    for column in NUMERIC:
        try:
            if not math.isfinite(float(row[column])):
                return False
        except (KeyError, ValueError):
            return False
    return True


def check_writable(path: Path) -> None:
    """Refuse, before any training, a --csv that is not ours (or not a file)."""
    read_csv(path)


def _write(path: Path, rows: Iterable[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows({column: csv_cell(value) for column, value in row.items()} for row in rows)
    atomic.write_text(path, buffer.getvalue())
    wrote("csv")


def lock_path(path: Path) -> Path:
    return Path(f"{path}.lock")


def upsert(path: Path, records: list, store=None) -> None:
    """Export ``records`` to the CSV at ``path``, replacing earlier rows of the same runs.

    Damaged rows are dropped and the store's runs of the same noise type exported again.
    """
    path = Path(path)
    with locks.locked(lock_path(path)):
        rows, damaged = read_csv(path)
        fresh = [result_row(record) for record in records]
        if damaged and store is not None:
            ctypes = {record.config.ctype for record in records}
            fresh = [result_row(record) for record in store.records() if record.config.ctype in ctypes] + fresh
        replaced = {str(row["Run"]) for row in fresh}
        kept = [row for row in rows if row["Run"] not in replaced]
        by_run = {str(row["Run"]): row for row in fresh}  # a run listed twice keeps its last row
        _write(path, [*kept, *by_run.values()])


def rebuild(path: Path, store, ctype: str | None = None) -> int:
    """Rewrite the CSV from every finished run (of noise type ``ctype``, if given) in ``store``."""
    path = Path(path)
    with locks.locked(lock_path(path)):
        read_csv(path)  # never overwrite a file that is not ours
        rows = [result_row(record) for record in store.records() if ctype is None or record.config.ctype == ctype]
        _write(path, rows)
    return len(rows)
