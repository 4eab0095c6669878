"""The results CSV: one row per run with fixed columns, upserted under a file lock, rebuildable from run folders.

Several processes may append to one CSV at once: each takes an exclusive lock, reads the file,
replaces any row of the same run (so a rerun never duplicates a row), and writes the whole file
atomically, so the header is written once and no row is lost or half-written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from training.config import TrainConfig, distill_label
from training.runs import RUN_JSON, is_complete, read_run
from training.schema import COLUMNS
from utils import atomic



def result_row(run: dict) -> dict[str, object]:
    """The CSV row of a run from its run.json content. Accuracies in percent."""
    config = TrainConfig.from_dict(run["config"])
    metrics = run["metrics"]
    return {
        "Dataset": config.dataset, "Depth": config.depth, "CType": config.ctype, "Corruption": config.corruption,
        "Seed": config.seed, "LR": config.lr, "WD": config.wd, "Distill": distill_label(config.stage),
        "Train Acc.": round(metrics["train_acc"], 4), "Test Acc.": round(metrics["test_acc"], 4),
        "Final Acc.": round(metrics["final_acc"], 4),
        "Realized Corruption": round(metrics["realized_corruption"], 6), "Epochs": metrics["epochs"],
        "Optimizer": config.optimizer, "Last": config.last, "Selection": config.select, "Run": run["run"],
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _write(path: Path, rows: Iterable[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def upsert_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Add ``rows`` to the CSV at ``path``, replacing earlier rows of the same runs."""
    with atomic.file_lock(path):
        replaced = {str(row["Run"]) for row in rows}
        kept = [row for row in read_rows(path) if row.get("Run") not in replaced]
        _write(path, [*kept, *rows])


def rebuild(path: Path, checkpoint_root: Path, ctype: str | None = None) -> int:
    """Rewrite the CSV from every complete run folder (of noise type ``ctype``, if given) under ``checkpoint_root``."""
    folders = sorted(p.parent for p in Path(checkpoint_root).glob(f"*/{RUN_JSON}") if is_complete(p.parent))
    rows = [result_row(run) for run in map(read_run, folders) if ctype is None or run["config"]["ctype"] == ctype]
    with atomic.file_lock(path):
        _write(path, rows)
    return len(rows)
