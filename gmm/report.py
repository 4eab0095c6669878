"""Plain-text tables and the JSON document of a run (config + provenance + result rows).

Standard library only (numbers arrive as Python floats): the command line formats without numpy.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
from typing import Any, Sequence

from utils.provenance import git_commit, package_versions
from utils.stages import Stage

# The columns of each table, in order; a table shows those that at least one of its rows has.
TABLES = {
    "theory": ("labels", "alpha", "model", "error", "m", "q", "b", "iterations", "last_update"),
    "simulate": ("labels", "alpha", "model", "N", "trials", "error", "standard_error", "theory", "z", "b"),
    "validation": (
        "labels",
        "alpha",
        "model",
        "N",
        "M",
        "validation",
        "trials",
        "error",
        "standard_error",
        "mean_rounds",
    ),
    "tune": (
        "labels",
        "alpha",
        "rounds",
        "model",
        "paper",
        "error",
        "lambdas",
        "betas",
        "at_bounds",
        "infeasible",
        "simulation_error",
        "simulation_standard_error",
    ),
    "best": ("labels", "alpha", "best_rounds", "best_model", "paper", "error", "evaluated_rounds"),
    "real": (
        "data",
        "model",
        "labels",
        "paper",
        "M",
        "corruption",
        "trials",
        "error",
        "standard_error",
        "mean_lambda",
        "mean_beta",
    ),
}
MODEL_COLUMNS = ("model", "best_model")
PACKAGES = ("numpy", "scipy", "matplotlib", "threadpoolctl")


def people(name: str) -> str:
    """A model's name for people: ``student 1`` for the slug ``student1``; other names as they are."""
    try:
        return Stage.parse(name).label
    except ValueError:
        return name


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value) or "-"
    return str(value)


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Left-aligned fixed-width table of ``columns`` (missing keys print as '-'; models by their label)."""
    cells = [
        [
            people(row[column]) if column in MODEL_COLUMNS and column in row else format_value(row.get(column, "-"))
            for column in columns
        ]
        for row in rows
    ]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def present(columns: Sequence[str], rows: Sequence[dict]) -> list[str]:
    """The columns that at least one row has."""
    return [column for column in columns if any(column in row for row in rows)]


def tables_text(tables: Sequence[tuple[str, Sequence[dict]]]) -> str:
    """The named tables (keys of :data:`TABLES`), separated by a blank line."""
    return "\n\n".join(format_table(rows, present(TABLES[name], rows)) for name, rows in tables)


def provenance(threads: int) -> dict[str, object]:
    """What produced a result: versions, machine, the git commit and the thread count the work ran with."""
    return {
        "versions": package_versions(PACKAGES),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
        "threads": threads,
    }


def document(config: Any, threads: int, **results: Any) -> dict:
    """What a run writes and prints as JSON: how it was made, then its results.

    ``tune`` says whether it simulated (``--N`` given); when it did not, the simulation's settings
    (``N``, ``trials``) are left out, as they played no part."""
    settings = dataclasses.asdict(config)
    if settings.get("command") == "tune":
        simulated = settings.get("N") is not None
        if not simulated:
            settings.pop("N", None)
            settings.pop("trials", None)
        return {"config": settings, "simulated": simulated, "provenance": provenance(threads), **results}
    return {"config": settings, "provenance": provenance(threads), **results}
