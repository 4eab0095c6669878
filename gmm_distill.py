#!/usr/bin/env python3
"""Self-distillation on a noisy Gaussian mixture: RS theory, finite-N simulations, per-round tuning.

    gmm_distill.py theory   --alpha 1 2 4 --rounds 2 --lambdas 1 1 1 --betas 2 2 --labels hard soft
    gmm_distill.py simulate --alpha 2 --rounds 1 --lambdas 1 1 --betas 2 --N 1000 --trials 20
    gmm_distill.py tune     --alpha 1 2 4 --rounds 2 --labels hard soft --N 1000 --trials 20 --plot
    gmm_distill.py real     --dataset digits --classes 3 8 --M 200 --corruption 0.2 --trials 10

Every subcommand prints a table (or the JSON document with --json) and writes the JSON document
to --out DIR as <subcommand>-<hash of the settings>.json, with --plot also <same name>.png and
.pdf; the files appear together, only after all the work succeeded. docs/gmm.md explains the
model, the equations and the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Sequence

from gmm.config import BIASES, LABELS, LOSSES, MAX_STAGES, Config
from utils.atomic import atomic_group
from utils.cli import Parser, add_bool_flag, add_out_dir, add_seed, add_threads, add_verbose
from utils.errors import UserError, exits_cleanly, run_script
from utils.outputs import planned_outputs

DEFAULT = Config(command="")  # flag defaults come from the config's
OUT = Path("results") / "gmm"
SIMULATE_N = 1000  # simulate's dimension without --N (tune simulates only when --N is given)


class _Rounds(argparse.Action):
    """``--rounds R`` (students after the teacher) stores the config's T = R + 1 trained models."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values + 1)


def build_parser() -> Parser:
    parser = Parser(prog="gmm_distill.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    common = Parser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument(
        "--alpha",
        dest="alphas",
        type=float,
        nargs="+",
        default=list(DEFAULT.alphas),
        metavar="A",
        help="sample ratios α = M/N (a list)",
    )
    model.add_argument("--rho", type=float, default=DEFAULT.rho, help="P(y = 1), in (0, 1)")
    model.add_argument("--delta", type=float, default=DEFAULT.delta, help="noise variance Δ > 0")
    model.add_argument(
        "--corruption",
        "--theta",
        dest="corruption",
        type=float,
        default=DEFAULT.corruption,
        metavar="P",
        help="label-flip probability θ, in [0, 0.5) (--theta: the GMM paper's name)",
    )
    model.add_argument(
        "--rounds",
        dest="stages",
        type=int,
        action=_Rounds,
        default=argparse.SUPPRESS,
        metavar="R",
        help=f"students after the teacher, 0..{MAX_STAGES - 1}; tune: the most tried (default: {DEFAULT.stages - 1})",
    )
    model.add_argument(
        "--stages",
        dest="stages",
        type=int,
        default=DEFAULT.stages,
        metavar="T",
        help=f"the GMM paper's count of trained models, T = R + 1 (default: {DEFAULT.stages})",
    )
    model.add_argument(
        "--lambdas",
        type=float,
        nargs="+",
        default=[],
        metavar="LAMBDA",
        help="ridge λ per model, teacher first (R + 1 values; default: all 1)",
    )
    model.add_argument(
        "--betas",
        type=float,
        nargs="+",
        default=[],
        metavar="BETA",
        help="inverse temperature β of each student's soft pseudo-labels (R values; default: all 1)",
    )
    model.add_argument(
        "--labels", nargs="+", choices=LABELS, default=list(DEFAULT.labels), help="pseudo-labels: soft, hard or both"
    )
    model.add_argument("--loss", choices=LOSSES, default=DEFAULT.loss, help="bce (logistic) or mse")
    model.add_argument(
        "--bias",
        choices=BIASES,
        default=DEFAULT.bias,
        help="learn every model's bias, or fix it at 0 (see docs/gmm.md)",
    )
    numerics = common.add_argument_group("numerics")
    numerics.add_argument("--samples", type=int, default=DEFAULT.samples, help="Monte Carlo draws of the theory")
    add_seed(numerics, DEFAULT.seed, help=f"seed of every random draw (default {DEFAULT.seed})")
    numerics.add_argument("--tol", type=float, default=DEFAULT.tol, help="saddle-point tolerance (relative update)")
    numerics.add_argument(
        "--damping",
        type=float,
        default=DEFAULT.damping,
        help=f"fraction of the old iterate kept, in [0, 1) (default: {DEFAULT.damping:g})",
    )
    numerics.add_argument(
        "--max-iter",
        "--max_iter",
        dest="max_iter",
        type=int,
        default=DEFAULT.max_iter,
        help="iterations per model before giving up",
    )
    add_threads(
        numerics,
        DEFAULT.threads,
        help="CPU threads for the computation (default 0: automatic, which is one thread here)",
    )
    output = common.add_argument_group("output")
    add_out_dir(output, OUT, help="folder of the JSON document <subcommand>-<hash>.json (and its figures)")
    add_bool_flag(output, "--plot", help="also write the figure, <same name>.png and .pdf")
    add_bool_flag(output, "--json", help="print the JSON document instead of a table")
    add_verbose(output)

    tuning = Parser(add_help=False)
    group = tuning.add_argument_group("tuning")
    group.add_argument(
        "--lambda-range",
        type=float,
        nargs=2,
        default=list(DEFAULT.lambda_range),
        metavar=("LOW", "HIGH"),
        help="search bounds of λ",
    )
    group.add_argument(
        "--beta-range",
        type=float,
        nargs=2,
        default=list(DEFAULT.beta_range),
        metavar=("LOW", "HIGH"),
        help="search bounds of β",
    )
    group.add_argument(
        "--stop-tol",
        type=float,
        default=DEFAULT.stop_tol,
        help="early stopping: a further round must lower the error by more than this",
    )
    group.add_argument(
        "--search-samples", type=int, default=DEFAULT.search_samples, help="theory draws during the search"
    )
    group.add_argument("--grid-points", type=int, default=DEFAULT.grid_points, help="grid points per new parameter")

    commands.add_parser("theory", parents=[common], help="RS saddle point per α and model")
    simulate = commands.add_parser("simulate", parents=[common, tuning], help="finite-N experiments")
    _add_sizes(simulate, N=SIMULATE_N, help="dimension of the simulations")
    simulate.add_argument(
        "--validation",
        type=float,
        default=0.0,
        help="if > 0: tune λ/β per model on this fraction of extra noisy samples",
    )
    tune = commands.add_parser("tune", parents=[common, tuning], help="per-model optimum from the theory")
    _add_sizes(
        tune,
        N=None,
        help="with it, each tuned chain is also simulated at this dimension (default: theory only, no simulation)",
    )
    real = commands.add_parser(
        "real", parents=[common, tuning], help="teacher vs student 1 (hard, soft) on two classes of real features"
    )
    source = real.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a feature set the data layer can load by name, e.g. digits")
    source.add_argument("--features", help="a feature file (.npz or .pt) of train/test features and labels")
    real.add_argument("--classes", type=int, nargs=2, required=True, metavar=("A", "B"), help="the two class indices")
    real.add_argument("--M", type=int, default=DEFAULT.M, help="training samples (balanced over the two classes)")
    real.add_argument("--trials", type=int, default=10, help="independent draws of the training set and noise")
    real.add_argument("--validation", type=float, default=0.25, help="fraction of M held out for tuning")
    return parser


def _add_sizes(parser: argparse.ArgumentParser, N: int | None, help: str) -> None:
    """``--N`` and ``--trials``, added to each subcommand on its own: a parent parser's actions are shared
    objects, so a default set on one subcommand would leak into the others (``tune`` would simulate)."""
    group = parser.add_argument_group("simulation")
    group.add_argument("--N", type=int, default=N, help=help)
    group.add_argument("--trials", type=int, default=DEFAULT.trials, help="independent training sets")


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated Config of the flags this subcommand has (flag names are Config field names)."""
    names = [field.name for field in dataclasses.fields(Config) if hasattr(args, field.name)]
    values = {name: tuple(v) if isinstance(v, list) else v for name, v in ((n, getattr(args, n)) for n in names)}
    values["labels"] = tuple(dict.fromkeys(values["labels"]))  # "--labels hard hard" means hard once
    return Config(**values).validate()


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with planned_outputs() as plan, warnings.catch_warnings():
        if not args.verbose:
            warnings.simplefilter("ignore")  # library warnings only with -v
        folder = plan.folder(args.out, "--out")
        paths: list[Path] = []

        def name_outputs(identity: str) -> None:
            """Called once the result's identity is known, before the work: probe the output names."""
            stem = f"{config.command}-{config.digest(identity)}"
            paths.extend(folder / f"{stem}{suffix}" for suffix in (".json", ".png", ".pdf")[: 3 if args.plot else 1])
            for path in paths:
                if path.is_dir():
                    raise UserError(
                        f"--out: {path} is a folder where the result goes; remove or rename it, or choose another --out"
                    )

        from gmm.report import document, tables_text  # numpy, scipy and matplotlib load from here on
        from gmm.runs import run

        outcome = run(config, progress=True, ready=name_outputs)
        payload = document(config, outcome.threads, **outcome.results)
        write_outputs(paths, payload, outcome.figure() if args.plot else None)
    print(f"wrote {paths[0]}" + (" and its figures (.png, .pdf)" if args.plot else ""), file=sys.stderr)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(tables_text(outcome.tables))
    return 0


def write_outputs(paths: Sequence[Path], payload: dict, figure) -> None:
    """The JSON document and (with a figure) its PNG and PDF, all appearing together or not at all.

    The figure is rendered in memory first: matplotlib's PDF writer, hitting a full disk, fails in its
    own cleanup (an AttributeError) instead of passing the disk's OSError on.
    """
    contents = [(json.dumps(payload, indent=2, default=str) + "\n").encode()]
    if figure is not None:
        for options in ({"format": "png", "dpi": 130}, {"format": "pdf"}):
            buffer = io.BytesIO()
            figure.savefig(buffer, bbox_inches="tight", **options)
            contents.append(buffer.getvalue())
    with atomic_group(paths) as temps:
        for temp, data in zip(temps, contents):
            temp.write_bytes(data)


if __name__ == "__main__":
    run_script(main)
