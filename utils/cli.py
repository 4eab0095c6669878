"""The command-line conventions every script follows, in one place.

- Flags are kebab-case; the authors' spellings (``--manualSeed``, ``--max_dist``, ``--lbd`` …) are
  extra option strings of the same flag, so they keep working.
- No abbreviations (``allow_abbrev=False``): ``--part`` is an error, not ``--partial``.
- Every ``--help`` shows each flag's default.
- A parse error is one line on stderr and exit status 2.
- The same idea has the same flag: the adders below (seeds, which checkpoint, verbosity, threads,
  output folder) and, for the settings of a run, the table in ``training/settings.py`` are the only
  places those flags are defined.

Standard library only: a script builds its parser before numpy or torch is imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from utils.checks import SEED_LIMIT  # numpy's SeedSequence and the authors' torch.manual_seed: [0, 2**32)

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
SEED_ALIASES = ("--seeds", "--manualSeed")  # of --seed: the plural, and the authors' spelling


def parse_bool(text: str) -> bool:
    """Parse ``True``/``False``/``1``/``0``/``yes``/``no`` (any case); anything else is an argparse error."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an integer, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed lies in [0, 2**32), got {value}")
    return value


def _default_text(default: Any) -> str:
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default)) if default else "none"
    return str(default)


ENTRY_POINT_PREFIX = "selfdistill-"  # pyproject's [project.scripts]


def invoked_name(script: str | None) -> str | None:
    """The name usage lines and errors give a script: the entry point it was started as
    (``selfdistill-train``), else its file name (``train_linear.py``), so that the hint repeats what the
    user typed. A subcommand's name (``runs.py list``) is derived by argparse from its parent's and kept."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if invoked.startswith(ENTRY_POINT_PREFIX) and (script is None or script.endswith(".py")):
        return invoked
    return script


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: …)`` to every flag whose help does not already say its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or "default" in text.lower()
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        return f"{text} (default: {_default_text(default).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with the project's conventions: no abbreviations, defaults in help, one-line errors."""

    def __init__(self, *args, **kwargs):
        kwargs["prog"] = invoked_name(kwargs.get("prog"))
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", Parser)
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def add_bool_flag(parser, *names: str, help: str, default: bool = False) -> None:
    """A boolean flag that works bare (``--partial``) and with a value (``--partial True|False``)."""
    parser.add_argument(*names, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)


def add_verbose(parser) -> None:
    add_bool_flag(parser, "-v", "--verbose", help="log progress details and library warnings")


def configure_logging(verbose: bool) -> None:
    """What ``-v`` decides in every script: INFO logs and library warnings with it, warnings only without."""
    import logging
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not verbose:
        warnings.filterwarnings("ignore")


def add_seeds(parser, default: Sequence[int], help: str = "seed(s)") -> None:
    """``--seed S [S …]`` (aliases ``--seeds``, the authors' ``--manualSeed``)."""
    parser.add_argument(
        "--seed",
        *SEED_ALIASES,
        dest="seeds",
        type=seed,
        nargs="+",
        default=list(default),
        metavar="SEED",
        help=f"{help}, each in [0, 2**32)",
    )


def add_seed(parser, default: int, help: str = "seed") -> None:
    """``--seed S``, one value (alias the authors' ``--manualSeed``)."""
    parser.add_argument(
        "--seed", "--manualSeed", dest="seed", type=seed, default=default, metavar="SEED", help=f"{help}, in [0, 2**32)"
    )


def add_threads(parser, default: int = 0, help: str | None = None) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        metavar="N",
        help=help or "CPU threads for the computation (0: automatic)",
    )


DEFAULT_STORE = Path("checkpoints")  # the run store's folder when -c is not given


def add_store(parser, help: str = "the run store: one folder per run", **extra) -> None:
    """``-c/--checkpoint DIR``: the run store, the same flag in every script that reads or writes runs."""
    extra.setdefault("default", DEFAULT_STORE)
    parser.add_argument("-c", "--checkpoint", type=Path, metavar="DIR", help=help, **extra)


def add_out_dir(parser, default, help: str = "output folder") -> None:
    """``--out DIR``: the folder a command writes into (every script: a folder, never a file)."""
    parser.add_argument("--out", type=Path, default=Path(default), metavar="DIR", help=help)


class LabelAction(argparse.Action):
    """A numeric alias of a flag that takes words: stores ``labels[value]`` (the authors' ``--last 0|1`` for
    ``--which best|last``)."""

    def __init__(self, *args, labels: Sequence[str] = ("best", "last"), **kwargs):
        super().__init__(*args, **kwargs)
        self.labels = tuple(labels)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.labels[values])


def add_which(parser, default: str | None = "best", help: str | None = None) -> None:
    """``--which best|last`` (alias the authors' ``--last 0|1``): which checkpoint of a run to use."""
    parser.add_argument(
        "--which",
        choices=("best", "last"),
        default=default,
        help=help or "checkpoint to use: best (the selected epoch) or last",
    )
    parser.add_argument(
        "--last",
        dest="which",
        type=int,
        choices=(0, 1),
        action=LabelAction,
        help="the authors' spelling of --which: 0 best, 1 last (default: as --which)",
    )
