"""Saving figures: PNG and PDF side by side, reproducibly (the PDF carries no creation date), and as one group.

Every figure is rendered to bytes in memory first; only then are the files written, through
``utils.atomic.atomic_group``, so a failure while rendering writes nothing and a failure while
writing (a full disk, Ctrl-C) leaves no file of the group behind: the files appear together or
not at all.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from matplotlib.figure import Figure

from utils.atomic import atomic_group

FORMATS = {"png": {"dpi": 150}, "pdf": {"metadata": {"CreationDate": None}}}


def render(figure: Figure) -> dict[str, bytes]:
    """The bytes of ``figure`` in every format of FORMATS, each cropped to the drawn artists."""
    rendered = {}
    for fmt, options in FORMATS.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, bbox_inches="tight", **options)
        rendered[fmt] = buffer.getvalue()
    return rendered


def figure_files(figure: Figure, stem: Path) -> dict[Path, bytes]:
    """``{stem.png: bytes, stem.pdf: bytes}``: one figure rendered in every format."""
    stem = Path(stem)
    return {stem.with_name(f"{stem.name}.{fmt}"): data for fmt, data in render(figure).items()}


def write_files(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every ``path: bytes`` as one atomic group (all or none); return the paths."""
    paths = [Path(path) for path in files]
    with atomic_group(paths) as temps:
        for temp, target, data in zip(temps, paths, files.values()):
            try:
                temp.write_bytes(data)
            except OSError as error:  # name the file the user asked for, not its temporary twin
                if error.filename in (None, str(temp)):
                    error.filename = str(target)
                raise
    return paths


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` together (both or neither); return the paths."""
    return write_files(figure_files(figure, stem))


def save_figures(figures: Mapping[Path, Figure], texts: Mapping[Path, str] | None = None) -> list[Path]:
    """Write several figures (``stem: figure``, PNG + PDF each) and text files (``path: text``) as one group.

    Everything is rendered before the first file is opened; returns the paths written.
    """
    files: dict[Path, bytes] = {}
    for stem, figure in figures.items():
        files.update(figure_files(figure, stem))
    files.update({Path(path): text.encode("utf-8") for path, text in (texts or {}).items()})
    return write_files(files)
