"""Where a sweep file named on the command line is: a path from the current folder first, then, by
name, one of the sweep files shipped with the package (``embedded``, ``paper.toml``), so that
``selfdistill-sweep embedded`` works from any folder."""

from __future__ import annotations

from pathlib import Path

from utils.errors import UsageError

# Beside the packages, in the repository and in an installed copy alike (pyproject ships it).
SHIPPED = Path(__file__).resolve().parents[1] / "sweeps"
SUFFIX = ".toml"


def shipped_names() -> list[str]:
    return sorted(path.stem for path in SHIPPED.glob(f"*{SUFFIX}"))


def find_sweep_file(given: Path) -> Path:
    """``given`` if it is a file (relative to the current folder), else the shipped file of that name
    (with or without ``.toml``); an error naming the shipped ones otherwise."""
    if given.is_dir():
        raise UsageError(f"{given} is a folder; give a sweep file, e.g. paper.toml")
    if given.is_file():
        return given
    name = given.name if given.suffix == SUFFIX else given.name + SUFFIX
    shipped = SHIPPED / name
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_names()) or "none"
    raise UsageError(
        f"no sweep file {given} here nor a shipped one of that name ({names}); give the path of a TOML sweep file"
    )
