"""Escaping of names that come from data (class names, dataset names from a features file) on their way into exports.

A features file is data, not code: its names must not become a spreadsheet formula in a CSV
(OWASP's "CSV injection"), a command in a report's LaTeX, extra columns and rows in a Markdown
table, or mathtext that matplotlib fails to parse. Each export format gets one function here;
readers of our own CSVs undo :func:`csv_cell` with :func:`csv_value`, so a name survives a round
trip unchanged.
"""

from __future__ import annotations

import math

# A spreadsheet reads a cell starting with one of these as a formula (OWASP: = + - @ tab CR).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def csv_cell(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet runs: a text starting like a formula gets a leading ``'``.

    Numbers stay numbers (``-0.5`` is a number, not a formula). A text already starting with ``'``
    gets one more, so that :func:`csv_value` can always undo exactly what was added.
    """
    if not isinstance(value, str) or not value or _is_number(value):
        return value
    if value.startswith(FORMULA_STARTS) or value.startswith(QUOTE):
        return QUOTE + value
    return value


def csv_value(cell: str) -> str:
    """The text :func:`csv_cell` was given, from the cell it wrote."""
    if cell.startswith(QUOTE) and cell[1:2] and cell[1:].startswith((*FORMULA_STARTS, QUOTE)):
        return cell[1:]
    return cell


def one_line(text: str) -> str:
    """Line breaks and tabs in a name as single spaces: a name can never start a new line of a table."""
    return " ".join(str(text).split())


def latex(text: str) -> str:
    """Plain text for LaTeX: every special character escaped in one pass, on one line."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in one_line(text))


def latex_label(text: str) -> str:
    """A ``\\label`` key: only letters, digits and ``: . _ - +``; anything else becomes ``-``."""
    return "".join(char if char.isascii() and (char.isalnum() or char in ":._-+") else "-" for char in text)


def markdown_cell(text: str) -> str:
    """Text for a Markdown table cell or a line beside one: on one line, ``|`` escaped."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|")


def figure_text(text: str) -> str:
    """Text for a matplotlib label or title: ``$`` escaped, so that a name is never parsed as mathtext."""
    return str(text).replace("$", r"\$")
