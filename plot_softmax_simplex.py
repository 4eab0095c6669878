"""Label averaging, seen: softmax outputs of the teacher, the students and the PLL student on a simplex.

The runs come from the flags train_linear.py was given (dataset or features, ctype, η, seed and
any setting such as --lr or --epochs that tells runs apart) under ``-c/--checkpoint``, or directly
as run folders (``--runs``). Each row of the figure is one η, each column one stage; the outputs on
the training instances of the chosen classes are renormalised over those classes and projected
onto a regular polygon (triangle for 3 classes, square for 4). See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Sequence

from analysis import simplex
from analysis.cli_support import load_one_feature_set
from analysis.figures import save_figure
from data.arguments import add_data_arguments
from data.noise import NOISE_TYPES, check_rate
from training.config import PLL
from utils.cli import Parser
from utils.errors import UserError, exits_cleanly

# Settings that tell runs of one dataset, η and seed apart: train_linear.py's flags of the same name,
# as (type, choices).
SETTING_FLAGS: dict[str, tuple[type, tuple | None]] = {
    "lr": (float, None), "wd": (float, None), "epochs": (int, None), "train_batch": (int, None),
    "gamma": (float, None), "momentum": (float, None), "optimizer": (str, ("sgd", "lbfgs")),
    "select": (str, ("test", "val")), "val_fraction": (float, None), "last": (int, (0, 1)), "q": (float, None),
    "pll_k": (int, None),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="plot_softmax_simplex.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    pick = parser.add_argument_group("which runs (as train_linear.py)")
    pick.add_argument("--ctype", choices=NOISE_TYPES, default="cc", help="noise type (default cc)")
    pick.add_argument("--corruption", type=float, nargs="+", metavar="ETA",
                      help="corruption rate(s) η, one row each (default: every η with a teacher run)")
    pick.add_argument("--manualSeed", "--seed", dest="seed", type=int, default=0, help="seed (default 0)")
    for key, (kind, choices) in SETTING_FLAGS.items():
        flag = f"--{key.replace('_', '-')}"
        pick.add_argument(flag, type=kind, choices=choices, metavar="VALUE" if choices is None else None,
                          help=f"only runs trained with this {flag} (default: any)")
    pick.add_argument("-c", "--checkpoint", type=Path, default=Path("checkpoints"),
                      help="folder of run folders (default ./checkpoints)")
    pick.add_argument("--runs", type=Path, nargs="+", metavar="DIR",
                      help="run folders to plot instead of searching --checkpoint")
    pick.add_argument("--which", choices=("best", "last"), default="best",
                      help="checkpoint of each run: best (the selected epoch, default) or last")
    figure = parser.add_argument_group("figure")
    figure.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="classes to show, by index or name (default: the 4 most populous)")
    figure.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                        help="folder for the figure (default ./reports)")
    figure.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def train_command(args: argparse.Namespace):
    """A function (η or None, stage or None) → the train_linear.py command that trains it (None: the whole chain)."""
    data = ["--features", str(args.features)] if args.features is not None else ["-d", args.dataset]
    optional = {"--data-root": args.data_root, "--feature-root": args.feature_root,
                "--depth": args.depth if args.depth != 34 else None,
                "--weights": args.weights if args.weights != "default" else None,
                "--download": args.download if args.download != "auto" else None}
    for key in SETTING_FLAGS:
        optional[f"--{key.replace('_', '-')}"] = getattr(args, key)
    data += [str(token) for flag, value in optional.items() if value is not None for token in (flag, value)]
    root = [] if args.checkpoint == Path("checkpoints") else ["-c", str(args.checkpoint)]

    def command(eta: float | None, stage: int | str | None = None) -> str:
        rates = [f"{eta:g}"] if eta is not None else [f"{r:g}" for r in args.corruption or []]
        noise = ["--ctype", args.ctype, *(["--corruption", *rates] if rates else []), "--manualSeed", str(args.seed)]
        which = [] if stage is None else (["--partial"] if stage == PLL else ["--dist", str(stage)])
        return shlex.join(["python3", "train_linear.py", *data, *noise, *root, *which])

    return command


def find_chains(args: argparse.Namespace, features, command) -> list[list[simplex.StageRun]]:
    if args.runs:
        return simplex.chains_from_folders(args.runs)
    settings = {key: getattr(args, key) for key in SETTING_FLAGS if getattr(args, key) is not None}
    query = simplex.RunQuery(features.source, args.depth, args.weights, args.ctype, args.seed, settings)
    return simplex.find_chains(simplex.scan_runs(args.checkpoint), query, args.corruption, command)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for eta in args.corruption or []:
        check_rate(eta)
    features = load_one_feature_set(args)
    classes = (simplex.parse_classes(args.classes, features.class_names) if args.classes
               else simplex.default_classes(features.train_labels, features.num_classes))
    if len(classes) < 2:
        raise UserError(f"{features.name} has fewer than 2 classes; nothing to project")
    command = train_command(args)
    chains = find_chains(args, features, command)
    rows = []
    for chain in chains:
        eta, seed = chain[0].config.corruption, chain[0].config.seed
        panels = []
        for run in chain:
            weights = simplex.load_weights(run, args.which, features, command(eta, run.config.stage))
            panels.append(simplex.stage_panel(run, weights, features, classes, args.which))
        rows.append((f"η = {eta:g}, seed {seed}", panels))
    first = chains[0][0].config
    names = [features.class_names[k] for k in classes]
    title = (f"{features.name}: softmax outputs renormalised over classes {', '.join(names)} "
             f"({first.ctype} noise, {args.which} checkpoints), training instances coloured by true class")
    stem = args.out / f"simplex-{features.name}-{first.ctype}-seed{first.seed}-classes-{'-'.join(map(str, classes))}"
    paths = save_figure(simplex.plot_simplex_grid(rows, names, title), stem)
    print(simplex.describe(chains))
    if all(len(chain) == 1 for chain in chains):
        print(f"only teachers found; train the students and the PLL student with: {command(None)}")
    print("wrote " + " and ".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
