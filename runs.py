"""Inspect a run store: list its runs with their state, show one run, remove what interrupted writers left.

python3 runs.py list                      # every run in ./checkpoints: complete, old format, damaged, in progress
python3 runs.py list -c runs/ -d digits --state damaged
python3 runs.py show digits-identity-cc-eta0.5-seed0-teacher-1a2b3c4d
python3 runs.py clean                     # temporary folders and stale locks of dead writers
python3 runs.py clean --damaged           # … and damaged runs, so that the next command redoes them
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Sequence

from training.settings import add_filter_arguments, filter_values, same_value
from utils.cli import Parser, add_store, add_verbose
from utils.errors import UsageError, exits_cleanly, run_script

STATES = ("complete", "old-format", "damaged", "in-progress")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="runs.py", description=__doc__.split("\n\n")[0])
    # -c works before and after the subcommand (`runs.py -c DIR list`, `runs.py list -c DIR`): the
    # subcommand's copy has no default, so that it overrides the top-level value only when given.
    add_store(parser, help="the run store")
    common = Parser(add_help=False)
    add_store(common, help="the run store (default: checkpoints)", default=argparse.SUPPRESS)
    add_verbose(common)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", parents=[common], help="every run with its state")
    listing.add_argument(
        "-d", "--dataset", nargs="+", default=[], metavar="NAME", help="only these datasets (default: every dataset)"
    )
    listing.add_argument(
        "--state", choices=STATES, nargs="+", default=[], help="only runs in these states (default: every state)"
    )
    # One filter per setting of the table (training.settings), as report.py's: --wd 0.01, --optimizer lbfgs …
    add_filter_arguments(listing.add_argument_group("only runs with these settings"), absent="any")
    show = commands.add_parser("show", parents=[common], help="one run: its run.json and the state of its files")
    show.add_argument("run", help="a run name (as `list` prints it)")
    clean = commands.add_parser("clean", parents=[common], help="remove what interrupted writers left behind")
    clean.add_argument("--damaged", action="store_true", help="also remove damaged runs")
    return parser


def state_word(lookup) -> str:
    return lookup.state.value.replace(" ", "-")


def list_runs(store, datasets: list[str], states: list[str], wanted: dict[str, object] | None = None) -> str:
    """One line per run of ``datasets`` in ``states`` whose settings have the ``wanted`` values (a run whose
    config cannot be read matches no setting filter)."""
    lines = []
    for lookup in store.lookups():
        dataset = lookup.config.dataset if lookup.config is not None else lookup.name.split("-")[0]
        if (datasets and dataset not in datasets) or (states and state_word(lookup) not in states):
            continue
        if wanted and (
            lookup.config is None
            or not all(same_value(getattr(lookup.config, name), value) for name, value in wanted.items())
        ):
            continue
        record = lookup.record
        detail = (
            f"test {record.metrics['test_acc']:6.2f}%  lr {record.config.lr:g} wd {record.config.wd:g} "
            f"epochs {record.config.epochs} {record.config.optimizer} {record.config.seeding}"
            if record is not None
            else lookup.problem
        )
        lines.append(f"{state_word(lookup):<12} {lookup.name}  {detail}")
    counts = {}
    for line in lines:
        counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) or "no runs"
    return "\n".join([*lines, f"{store.root}: {summary}"])


def show_run(store, name: str) -> str:
    entry = store.entry(name)  # a run name as `list` prints it, never a path
    if entry is None:
        raise UsageError(f"no run {name!r} in {store.root}; `python3 runs.py list -c {store.root}` lists them")
    lookup = store.inspect(entry)
    folder = store.folder_of(entry)
    if folder is None:
        return f"{name}: {lookup.state.value} ({lookup.problem})"
    lines = [f"{name}: {lookup.state.value}" + (f" ({lookup.problem})" if lookup.problem else ""), f"files in {folder}"]
    try:
        lines.append(json.dumps(json.loads((folder / "run.json").read_text()), indent=2))
    except (OSError, ValueError, RecursionError) as error:
        lines.append(f"run.json unreadable: {type(error).__name__}")
    return "\n".join(lines)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        warnings.filterwarnings("ignore")
    from training.store import RunStore, State

    cleaning = args.command not in ("list", "show")
    if not args.checkpoint.is_dir():
        if cleaning and not os.path.lexists(args.checkpoint):
            print(f"{args.checkpoint}: no run store yet, nothing to clean")  # e.g. a chain about to make it
            return 0
        raise UsageError(f"-c/--checkpoint {args.checkpoint} is not a run store (no such folder)")
    store = RunStore(args.checkpoint)
    if args.command == "list":
        print(list_runs(store, args.dataset, args.state, filter_values(args)))
    elif args.command == "show":
        print(show_run(store, args.run))
    else:
        removed = store.sweep(strict=True)
        if args.damaged:
            for lookup in store.lookups():
                if lookup.state is State.DAMAGED:
                    store.remove(lookup.name)
                    removed.append(store.root / lookup.name)
        for path in removed:
            print(f"removed {path}")
        print(f"{len(removed)} leftover(s) removed from {store.root}")
    return 0


if __name__ == "__main__":
    run_script(main)
