"""Plain-text tables and the JSON document of a run (config + provenance + result rows)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from utils.provenance import provenance


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
    """Left-aligned fixed-width table of ``columns`` (missing keys print as '-')."""
    cells = [[format_value(row.get(column, "-")) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def document(config: Any, **results: Any) -> dict:
    """What a run writes and prints as JSON: how it was made, then its results."""
    return {"config": dataclasses.asdict(config), "provenance": provenance(), **results}
