"""Label averaging, seen: softmax outputs of the teacher, the students and the PLL student on a simplex.

The runs come from the run store (``-c/--checkpoint``): the chains of the given dataset or
features, ctype and seed, in the setting chosen as report.py chooses it (the dataset's default,
or the one with most runs; flags such as --lr or --epochs fix values), or directly as run folders
(``--runs``). Each row of the figure is one η, each column one stage; the outputs on the training
instances of the chosen classes are renormalised over those classes and projected onto a regular
polygon (triangle for 3 classes, square for 4). See docs/analysis.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from training.settings import SETTINGS, add_filter_arguments, filter_values
from utils import checks
from utils.cli import Parser, add_out_dir, add_seed, add_store, add_verbose, add_which, configure_logging
from utils.errors import UsageError, exits_cleanly, run_script

# --ctype picks the chains here (default cc); --which is the checkpoint to plot, so the students'
# --which of train_linear.py is not a filter of this script.
NOT_FILTERS = ("ctype", "last")


def build_parser() -> argparse.ArgumentParser:
    from data.arguments import add_data_arguments

    parser = Parser(prog="plot_softmax_simplex.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    pick = parser.add_argument_group("which runs (as train_linear.py)")
    ctype = SETTINGS["ctype"]
    pick.add_argument(ctype.flag, choices=ctype.choices, default=ctype.default, help=ctype.help)
    pick.add_argument(
        "--corruption",
        type=float,
        nargs="+",
        metavar="ETA",
        help="corruption rate(s) η, one row each (default: every η with a teacher run)",
    )
    add_seed(pick, 0)
    # One filter per setting of the table (training.settings): --lr, --wd, --optimizer, --select …
    add_filter_arguments(pick, skip=NOT_FILTERS)
    add_store(pick, help="the run store")
    pick.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="run folders to plot instead of searching the store (default: search the store)",
    )
    add_which(pick, help="checkpoint of each run to plot: best (the selected epoch) or last")
    figure = parser.add_argument_group("figure")
    figure.add_argument(
        "--classes", nargs="+", metavar="CLASS", help="classes to show, by index or name (default: the 4 most populous)"
    )
    add_out_dir(figure, "reports", help="folder for the figure")
    add_verbose(figure)
    return parser


def wanted_settings(args: argparse.Namespace) -> dict[str, object]:
    """Setting → value for every filter given (each value checked on its own, as a filter needs)."""
    return filter_values(args, skip=NOT_FILTERS)


def train_command(args: argparse.Namespace):
    """A function (η or None, stage or None) → the train_linear.py command that trains it (None: the whole chain)."""
    from training.commands import chain_command
    from training.config import TrainConfig
    from utils.stages import Stage

    data = ["--features", str(args.features)] if args.features is not None else ["-d", args.dataset]
    optional = {"--data-root": args.data_root, "--feature-root": args.feature_root}
    for action_dest in ("depth", "arch", "weights", "download"):
        value = getattr(args, action_dest, None)
        if value is not None and value not in ("default", "auto") and not (action_dest == "depth" and value == 34):
            optional[f"--{action_dest}"] = value
    data += [str(token) for flag, value in optional.items() if value is not None for token in (flag, value)]
    dataset = args.dataset if args.features is None else ""
    values = {name: setting.default_for(dataset) for name, setting in SETTINGS.items()}
    wanted = wanted_settings(args)
    values.update(wanted, ctype=args.ctype, seed=args.seed, corruption=0.0)
    if "val_fraction" in wanted and "select" not in wanted:
        values["select"] = "val"  # only runs with a validation split have a fraction
    config = TrainConfig.build(
        values, dataset=dataset, feature_source="", backbone="", weights="", stage=Stage.teacher()
    )

    def command(eta: float | None, stage=None) -> str:
        rates = [eta] if eta is not None else list(args.corruption or [])
        return chain_command(config, data, args.checkpoint, stage, rates=rates, seeds=[args.seed])

    return command


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    for eta in args.corruption or []:
        checks.interval("--corruption", eta, 0.0, 1.0)
    wanted_settings(args)
    from data.arguments import check_data_arguments

    check_data_arguments(args, [args.dataset])
    from analysis import settings as settings_mod
    from analysis import simplex
    from analysis.cli_support import load_one_feature_set
    from analysis.figures import save_figure
    from training.store import RunStore
    from utils.outputs import planned_outputs
    from utils.progress import Steps

    command = train_command(args)
    records = None
    if not args.runs:
        records = RunStore(args.checkpoint).records()
        if args.features is None:  # the store before any download: no runs, no features needed
            simplex.require_teacher_runs(records, args.dataset, args.ctype, args.seed, command)
    features = load_one_feature_set(args)
    classes = (
        simplex.parse_classes(args.classes, features.class_names)
        if args.classes
        else simplex.default_classes(features.train_labels, features.num_classes)
    )
    if len(classes) < 2:
        raise UsageError(f"{features.name} has fewer than 2 classes; nothing to project")
    others, tokens = "", []
    if args.runs:
        chains = simplex.chains_from_records(simplex.records_from_folders(args.runs))
    else:
        from analysis.selection import refuse_damaged

        store = RunStore(args.checkpoint)
        refuse_damaged(store, [features.name], args.ctype)
        chains, others, setting = simplex.find_chains(
            records, features, args.ctype, args.seed, wanted_settings(args), args.corruption, command
        )
        tokens = settings_mod.name_tokens(setting, features.name)
        shown = setting.describe(("lr", "wd", "epochs", "optimizer", "select", "seeding"))
    with planned_outputs() as plan:
        out = plan.folder(args.out, "--out")  # probed before the panels' work
        print(simplex.describe(chains), flush=True)  # what was found, before the seconds of drawing
        rows = []
        with Steps(sum(map(len, chains)), "panels") as steps:
            for chain in chains:
                eta, seed = chain[0].config.corruption, chain[0].config.seed
                panels = []
                for run in chain:
                    weights = simplex.load_weights(run, args.which, features)
                    panels.append(simplex.stage_panel(run, weights, features, classes, args.which))
                    steps.done(f"η={eta:g} seed {seed} {run.config.stage.label}")
                rows.append((f"η = {eta:g}, seed {seed}", panels))
        first = chains[0][0].config
        names = [features.class_names[k] for k in classes]
        title = (
            f"{features.name}: softmax outputs renormalised over classes {', '.join(names)} "
            f"({first.ctype} noise, {args.which} checkpoints), training instances coloured by true class"
        )
        if not args.runs and settings_mod.non_default_caption(setting, features.name):  # how it was made, in words
            title += f"\nsetting: {settings_mod.non_default_caption(setting, features.name)}"
        etas = "-".join(f"{chain[0].config.corruption:g}" for chain in chains)
        parts = [
            features.name,
            first.ctype,
            f"seed{first.seed}",
            f"eta{etas}",
            *tokens,
            args.which,
            "classes-" + "-".join(map(str, classes)),
        ]
        with Steps(1, "figures") as drawing:
            paths = save_figure(simplex.plot_simplex_grid(rows, names, title), out / ("simplex-" + "_".join(parts)))
            drawing.done("drawn and saved")
    if others:
        print(f"setting shown: {shown}; {others}")
    if all(len(chain) == 1 for chain in chains):
        print(f"only teachers found; train the students and the PLL student with: {command(None)}")
    print("wrote " + " and ".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    run_script(main)
