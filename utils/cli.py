"""Argument parsing helpers shared by the command-line scripts."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_bool(text: str) -> bool:
    """Parse ``True``/``False``/``1``/``0``/``yes``/``no`` (any case); anything else is an argparse error."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def add_bool_flag(parser: argparse.ArgumentParser, *names: str, help: str, default: bool = False) -> None:
    """A boolean flag that works bare (``--partial``) and with a value (``--partial True|False``)."""
    parser.add_argument(
        *names, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help
    )


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
