"""Every option of every script's --help says its default, unless it is a flag that has none by nature
(an on/off switch, --help itself, an option that is required)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
    for folder in (REPO, REPO / "scripts", REPO / "benchmarks")
    for path in folder.glob("*.py")
    if "def build_parser" in path.read_text()
)


def parsers(parser: argparse.ArgumentParser):
    """``parser`` and every subcommand's parser, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def switch(action: argparse.Action) -> bool:
    """An option whose default needs no words: on/off (bare or ``--flag BOOL`` with default off), help,
    version, a count, or one the user must give."""
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._CountAction)):
        return True
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)):
        return True
    if action.nargs == "?" and action.const is True and action.default is False:
        return True
    return action.required


def required_in_a_group(parser: argparse.ArgumentParser) -> set[argparse.Action]:
    return {action for group in parser._mutually_exclusive_groups if group.required for action in group._group_actions}


def test_every_script_with_a_parser_is_checked():
    assert {"train_linear", "report", "sweep", "runs", "scripts.reference_replay", "benchmarks.bench_engine"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_shows_its_default(script):
    missing = []
    for parser in parsers(importlib.import_module(script).build_parser()):
        formatter = parser._get_formatter()
        exempt = required_in_a_group(parser)
        for action in parser._actions:
            if not action.option_strings or switch(action) or action in exempt or action.help == argparse.SUPPRESS:
                continue
            text = formatter._get_help_string(action) % {"default": action.default, "prog": parser.prog}
            if "default" not in text.lower() or "default none" in text.lower():  # Python's None says nothing
                missing.append(f"{parser.prog} {'/'.join(action.option_strings)}: {text!r}")
    assert not missing, "options whose --help shows no default:\n" + "\n".join(missing)
