"""Saving figures: PNG and PDF side by side, atomically, and reproducibly (the PDF carries no creation date)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from utils.atomic import atomic_path

FORMATS = {"png": {"dpi": 150}, "pdf": {"metadata": {"CreationDate": None}}}


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (temp file + rename each); return the paths."""
    paths = []
    for fmt, options in FORMATS.items():
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path) as temp:
            figure.savefig(temp, format=fmt, bbox_inches="tight", **options)
        paths.append(path)
    return paths
