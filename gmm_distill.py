#!/usr/bin/env python3
"""Self-distillation on a noisy Gaussian mixture: RS theory, finite-N simulations, per-stage tuning.

    gmm_distill.py theory   --alpha 1 2 4 --stages 3 --lambdas 1 1 1 --betas 2 2 --labels hard soft
    gmm_distill.py simulate --alpha 2 --stages 2 --lambdas 1 1 --betas 2 --N 1000 --trials 20
    gmm_distill.py tune     --alpha 1 2 4 --stages 3 --labels hard soft --N 1000 --trials 20 --plot fig.png
    gmm_distill.py real     --dataset digits --classes 3 8 --M 200 --theta 0.2 --trials 10

Every subcommand prints a table (or JSON with --json), writes the JSON document with --out and a
figure with --plot. docs/gmm.md explains the model, the equations and the options.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from typing import Sequence

from tqdm import tqdm

from gmm.model import BIASES, LABELS, LOSSES
from gmm.plots import plot_real, plot_simulation, plot_theory, plot_tuning
from gmm.report import document, format_table
from gmm.runs import Config, check_config, run_real, run_simulate, run_theory, run_tune
from utils.atomic import write_json
from utils.cli import Parser, add_bool_flag
from utils.errors import exits_cleanly

DEFAULT = Config(command="")  # flag defaults come from the config's

TABLES = {
    "theory": ("labels", "alpha", "stage", "error", "m", "q", "b", "iterations", "last_update"),
    "simulate": ("labels", "alpha", "stage", "N", "trials", "error", "standard_error", "theory", "z", "b"),
    "validation": ("labels", "alpha", "stage", "N", "M", "validation", "trials", "error", "standard_error",
                   "mean_stages"),
    "tune": ("labels", "alpha", "stages", "error", "lambdas", "betas", "at_bounds", "infeasible",
             "simulation_error", "simulation_standard_error"),
    "best": ("labels", "alpha", "best_stages", "error", "evaluated_stages"),
    "real": ("data", "model", "M", "theta", "trials", "error", "standard_error", "mean_lambda", "mean_beta"),
}


def build_parser() -> Parser:
    parser = Parser(prog="gmm_distill.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    common = Parser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("--alpha", dest="alphas", type=float, nargs="+", default=DEFAULT.alphas,
                       help="sample ratios α = M/N (a list)")
    model.add_argument("--rho", type=float, default=DEFAULT.rho, help="P(y = 1), in (0, 1)")
    model.add_argument("--delta", type=float, default=DEFAULT.delta, help="noise variance Δ > 0")
    model.add_argument("--theta", type=float, default=DEFAULT.theta, help="label-flip probability, in [0, 0.5)")
    model.add_argument("--stages", type=int, default=DEFAULT.stages, help="T: number of trained models (T = 1 is 0-SD)")
    model.add_argument("--lambdas", type=float, nargs="+", default=[], help="ridge λ_t per stage (T values; default 1)")
    model.add_argument("--betas", type=float, nargs="+", default=[],
                       help="inverse temperature β_t per soft pseudo-label (T − 1 values; default 1)")
    model.add_argument("--labels", nargs="+", choices=LABELS, default=DEFAULT.labels,
                       help="pseudo-labels: soft, hard or both")
    model.add_argument("--loss", choices=LOSSES, default=DEFAULT.loss, help="bce (logistic) or mse")
    model.add_argument("--bias", choices=BIASES, default=DEFAULT.bias,
                       help="learn every stage's bias, or fix it at 0 (see docs/gmm.md)")
    numerics = common.add_argument_group("numerics")
    numerics.add_argument("--samples", type=int, default=DEFAULT.samples, help="Monte Carlo draws of the theory")
    numerics.add_argument("--seed", type=int, default=DEFAULT.seed, help="seed of every random draw")
    numerics.add_argument("--tol", type=float, default=DEFAULT.tol, help="saddle-point tolerance (relative update)")
    numerics.add_argument("--damping", type=float, default=DEFAULT.damping,
                          help="fraction of the old iterate kept, in [0, 1)")
    numerics.add_argument("--max-iter", type=int, default=DEFAULT.max_iter,
                          help="iterations per stage before giving up")
    numerics.add_argument("--threads", type=int, default=DEFAULT.threads, help="BLAS threads for simulations")
    output = common.add_argument_group("output")
    add_bool_flag(output, "--json", help="print the JSON document instead of a table")
    output.add_argument("--out", help="write the JSON document (config, provenance, results) here")
    output.add_argument("--plot", help="write a figure here (.png, .pdf, .svg)")
    add_bool_flag(output, "--verbose", help="log progress of the solvers")

    tuning = Parser(add_help=False)
    group = tuning.add_argument_group("tuning")
    group.add_argument("--lambda-range", type=float, nargs=2, default=DEFAULT.lambda_range, metavar=("LOW", "HIGH"))
    group.add_argument("--beta-range", type=float, nargs=2, default=DEFAULT.beta_range, metavar=("LOW", "HIGH"))
    group.add_argument("--stop-tol", type=float, default=DEFAULT.stop_tol,
                       help="early stopping: a further stage must lower the error by more than this")
    group.add_argument("--search-samples", type=int, default=DEFAULT.search_samples,
                       help="theory draws during the search")
    group.add_argument("--grid-points", type=int, default=DEFAULT.grid_points, help="grid points per new parameter")

    sizes = Parser(add_help=False)
    group = sizes.add_argument_group("simulation")
    group.add_argument("--N", type=int, default=None,
                       help="dimension of the simulations (simulate: 1000; tune: simulate only if given)")
    group.add_argument("--trials", type=int, default=DEFAULT.trials, help="independent training sets")

    commands.add_parser("theory", parents=[common], help="RS saddle point per α and stage")
    simulate = commands.add_parser("simulate", parents=[common, sizes, tuning], help="finite-N experiments")
    simulate.set_defaults(N=1000)
    simulate.add_argument("--validation", type=float, default=0.0,
                          help="if > 0: tune λ/β per stage on this fraction of extra noisy samples")
    commands.add_parser("tune", parents=[common, sizes, tuning], help="per-stage optimum from the theory")
    real = commands.add_parser("real", parents=[common, tuning], help="0-SD vs 1-SD on two classes of real features")
    source = real.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a feature set the data layer can load by name, e.g. digits")
    source.add_argument("--features", help="a feature file written by the training pipeline")
    real.add_argument("--classes", type=int, nargs=2, required=True, metavar=("A", "B"), help="the two class indices")
    real.add_argument("--M", type=int, default=DEFAULT.M, help="training samples (balanced over the two classes)")
    real.add_argument("--trials", type=int, default=10, help="independent draws of the training set and noise")
    real.add_argument("--validation", type=float, default=0.25, help="fraction of M held out for tuning")
    return parser


def config_from_args(args) -> Config:
    """The Config of the flags this subcommand has (flag names are Config field names); lists become tuples."""
    names = [field.name for field in dataclasses.fields(Config) if hasattr(args, field.name)]
    values = {name: tuple(v) if isinstance(v, list) else v for name, v in ((n, getattr(args, n)) for n in names)}
    values["labels"] = tuple(dict.fromkeys(values["labels"]))  # "--labels hard hard" means hard once
    return check_config(Config(**values))


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    config = config_from_args(args)
    progress = functools.partial(tqdm, desc=config.command, leave=False, disable=None)
    if config.command == "theory":
        rows = run_theory(config, progress)
        tables, results, figure = [("theory", rows)], {"rows": rows}, functools.partial(plot_theory, rows)
    elif config.command == "simulate":
        rows = run_simulate(config, progress)
        name = "validation" if config.validation > 0 else "simulate"
        tables, results, figure = [(name, rows)], {"rows": rows}, functools.partial(plot_simulation, rows)
    elif config.command == "tune":
        rows, best_rows = run_tune(config, progress)
        tables = [("tune", rows), ("best", best_rows)]
        results = {"rows": rows, "best_stages": best_rows}
        figure = functools.partial(plot_tuning, rows, best_rows)
    else:
        rows = run_real(config, progress)
        tables, results, figure = [("real", rows)], {"rows": rows}, functools.partial(plot_real, rows)

    payload = document(config, **results) if args.out or args.json else None
    if args.out:
        write_json(args.out, payload)
    if args.plot:
        figure(args.plot)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print("\n\n".join(format_table(table_rows, _present(TABLES[name], table_rows)) for name, table_rows in tables))
    return 0


def _present(columns: Sequence[str], rows: Sequence[dict]) -> list[str]:
    """The columns that at least one row has."""
    return [column for column in columns if any(column in row for row in rows)]


if __name__ == "__main__":
    sys.exit(main())
