"""The shape of a sweep file, checked before any of its values is used: a sweep file is data, never code.

Its strings end up in job names, log folders and generated sbatch scripts that a scheduler runs, so
every key and every string value must be a plain name: letters, digits and ``. _ -``, not starting
with a dot or a dash, at most ``NAME_LENGTH`` characters (a newline, ``;``, ``$()``, a backtick, a
space, a ``/`` or a leading ``--`` is refused). Its structure is checked too: values are strings,
numbers, booleans or flat lists of them; ``datasets`` and ``grids`` are tables of tables;
``resources`` a table of values; nothing is nested deeper than ``MAX_DEPTH`` tables. The
``[resources]`` values are checked by :mod:`sweeping.resources`, as sweep.py's flags are. Every failure
is one :class:`UsageError` naming the file and where in it. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

from utils.errors import UsageError

NAME_LENGTH = 64
NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}")
MAX_DEPTH = 4  # file → datasets → digits → wd → {base = …}: the deepest a sweep file needs
TABLES_OF_TABLES = ("datasets", "grids")
SCALARS = (str, int, float, bool)


def check_name(where: str, what: str, value: object) -> str:
    """``value`` if it is a plain name (see the module's docstring), else one line saying what a name may hold."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise UsageError(
            f"{where}: {what} {value!r} is not a plain name: use letters, digits and . _ - only "
            f"(at most {NAME_LENGTH} characters, not starting with '.' or '-')"
        )
    return value


def check_structure(where: str, raw: dict) -> None:
    """Every key and string a plain name, every value of an allowed type, no deeper than ``MAX_DEPTH`` tables."""
    stack: list[tuple[str, object]] = [("", raw)]
    while stack:
        place, value = stack.pop()
        if isinstance(value, dict):
            if place.count(".") >= MAX_DEPTH:
                raise UsageError(f"{where}: {place} nests tables deeper than a sweep file's {MAX_DEPTH} levels")
            for key, item in value.items():
                check_name(where, f"the key in {place}" if place else "the key", key)
                stack.append((f"{place}.{key}" if place else key, item))
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, SCALARS):
                    raise UsageError(f"{where}: {place} holds a {_kind(item)}; its list holds strings or numbers")
                if isinstance(item, str):
                    check_name(where, place, item)
        elif isinstance(value, str):
            check_name(where, place, value)
        elif not isinstance(value, SCALARS):
            raise UsageError(f"{where}: {place} is a {_kind(value)}; give a string, a number or a list of them")
    for key in (*TABLES_OF_TABLES, "resources"):
        if key in raw and not isinstance(raw[key], dict):
            raise UsageError(f"{where}: {key} must be a table ([{key}...]), got {_kind(raw[key])}")
    for key in TABLES_OF_TABLES:
        for name, table in raw.get(key, {}).items():
            if not isinstance(table, dict):
                raise UsageError(f"{where}: {key}.{name} must be a table ([{key}.{name}]), got {_kind(table)}")


def sweep_name(where: str, name: object, path: Path) -> str:
    """The sweep's name (its log folder's name): the file's ``name``, else the file's stem; a plain name."""
    if name is None:
        return check_name(where, 'the file\'s name (or give name = "..." in it)', path.stem)
    return check_name(where, "name", name)


def _kind(value: object) -> str:
    return {dict: "table", list: "list"}.get(type(value), type(value).__name__)
