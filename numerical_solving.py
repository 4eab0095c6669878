"""Solve the paper's synthetic Gram-matrix theory of self-distillation exactly, stage by stage.

    python3 numerical_solving.py                        # K=4, n=500, eta=0.5, the teacher and 9 students
    python3 numerical_solving.py --corruption 0.1 0.5 0.9 --wd 1e-5 1e-4 --plots
    python3 numerical_solving.py --approx               # closed form of the linearised rounds
    python3 numerical_solving.py --method adam          # the reference's Adam optimisation

Each solve is one model: the teacher (trained on the given labels), then students 1..R, each trained
on the previous model's outputs. Prints a table per point (or a stage x corruption table for a
sweep) and the saved files; see docs/solver.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import warnings
from functools import partial
from pathlib import Path
from typing import Sequence

from gram_theory.config import DEFAULT_THREADS, GRAMS, METHODS, Config, planned_paths, run_files
from utils.cli import Parser, add_bool_flag, add_out_dir, add_seed, add_threads, add_verbose
from utils.errors import UserError, exits_cleanly, run_script
from utils.outputs import planned_outputs

DEFAULTS = Config()


class _MaxDistAction(argparse.Action):
    """The authors' ``--max_dist M``: M solves in all, the teacher and M - 1 students (``--rounds M - 1``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values < 1:
            parser.error(f"argument {option_string}: must be at least 1 (the teacher alone), got {values}")
        setattr(namespace, self.dest, values - 1)


def build_parser() -> Parser:
    parser = Parser(prog="numerical_solving.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=DEFAULTS.k, help="number of classes K")
    parser.add_argument("--n", type=int, default=DEFAULTS.n, help="samples per class (N = K n)")
    parser.add_argument(
        "--wd",
        "--lbd",
        "--weight-decay",
        dest="wd",
        type=float,
        nargs="+",
        metavar="LAMBDA",
        default=list(DEFAULTS.wd),
        help="regularisation lambda (weight decay); several values sweep",
    )
    parser.add_argument("--c", type=float, default=DEFAULTS.c, help="intra-class correlation, 0 <= d < c < 1")
    parser.add_argument("--d", type=float, default=DEFAULTS.d, help="inter-class correlation")
    parser.add_argument(
        "--corruption",
        "--eta",
        dest="corruption",
        type=float,
        nargs="+",
        metavar="ETA",
        default=list(DEFAULTS.corruption),
        help="label corruption rate eta; several values sweep",
    )
    parser.add_argument("--epsilon", type=float, default=DEFAULTS.epsilon, help="noise level of the Gram matrix")
    parser.add_argument(
        "--rounds", type=int, default=DEFAULTS.rounds, metavar="R", help="students after the teacher (R + 1 solves)"
    )
    parser.add_argument(
        "--max-dist",
        "--max_dist",
        dest="rounds",
        type=int,
        action=_MaxDistAction,
        metavar="M",
        help="the authors' spelling: M solves in all, the teacher and M - 1 students "
        f"(default {DEFAULTS.solves}, i.e. --rounds {DEFAULTS.rounds})",
    )
    parser.add_argument(
        "--max-iter",
        "--max_iter",
        dest="max_iter",
        type=int,
        default=DEFAULTS.max_iter,
        help="cap per solve: Newton iterations, or Adam steps with --method adam",
    )
    add_bool_flag(parser, "--approx", help="linearise the softmax, (1 + z) / K: closed-form rounds")
    add_seed(parser, DEFAULTS.seed, help=f"seed of Phi, the labels and Adam's starts (default {DEFAULTS.seed})")
    add_out_dir(parser, DEFAULTS.out, help="folder for the run's files (Phi is stored there once and shared)")
    parser.add_argument(
        "--tol", type=float, default=DEFAULTS.tol, help="max-norm residual every exact solve must reach"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULTS.method,
        help="newton: exact; adam: the reference's optimiser, for comparison",
    )
    parser.add_argument(
        "--gram",
        choices=GRAMS,
        default=DEFAULTS.gram,
        help="features: a true Gram matrix; reference: the reference's unsymmetrised noisy matrix",
    )
    add_bool_flag(parser, "--plots", help="also write accuracy-vs-corruption, spectrum and simplex figures")
    add_threads(
        parser,
        DEFAULT_THREADS,
        help="CPU threads for numpy and scipy (0: every available CPU); one was measured fastest, see docs/solver.md",
    )
    add_verbose(parser)
    return parser


def parse_config(argv: Sequence[str] | None) -> Config:
    values = vars(build_parser().parse_args(argv))
    values["wd"] = tuple(values["wd"])
    values["corruption"] = tuple(values["corruption"])
    values["out"] = str(values["out"])
    return Config(**values)


def settings_caption(config: Config) -> str:
    """The settings of ``config`` that differ from the defaults and change the numbers, for figure titles."""
    default = Config()
    skip = {"wd", "corruption", "threads", "out", "plots", "verbose"}  # in the title already, or no effect
    changed = [
        f"{field.name}={getattr(config, field.name)}"
        for field in dataclasses.fields(Config)
        if field.name not in skip and getattr(config, field.name) != getattr(default, field.name)
    ]
    return ", ".join(changed)


def _figures(setup, points, files, caption: str = "") -> list:
    """(path, draw(path)) for every figure of ``--plots``, in ``config.figure_specs`` order: drawn into
    the run's file group when it is saved; ``caption`` (non-default settings) goes into each title."""
    # matplotlib takes a noticeable time to import: only plotting runs pay for it.
    from gram_theory import plots

    figures = []
    for row in points:
        if len(row) > 1:
            figures.append((files.figure("accuracy", row[0].lbd), partial(plots.accuracy_vs_eta, row, caption=caption)))
        for point in row:
            figures.append(
                (
                    files.figure("spectrum", point.lbd, point.eta),
                    partial(plots.label_averaging_spectrum, setup.spectrum, point, caption=caption),
                )
            )
            figures.append(
                (
                    files.figure("simplex", point.lbd, point.eta),
                    partial(plots.simplex, point, setup.labels, caption=caption),
                )
            )
    return figures


def _counted(draw, steps, name: str):
    """``draw``, marking one step done once it has drawn."""

    def counted(path):
        draw(path)
        steps.done(name)

    return counted


def solve(config: Config) -> tuple[list, list[Path]]:
    """Validate, probe the outputs, build the data, solve every point and save the run's files together.

    Returns the sweep's points ([wd][corruption]) and the paths written.
    """
    config.validate()
    with planned_outputs() as plan:
        plan.folder(config.out, "--out")
        for path in planned_paths(config):
            plan.file(path, "--out")
        files = run_files(config)
        if files.phi.is_dir():  # Phi is read if it is there, written if not: it must not be a folder
            raise UserError(f"--out: {files.phi} is a folder where Phi's file belongs; remove or rename it")
        # numpy, scipy (and matplotlib) load only now: a Ctrl-C while they import is already one line.
        from gram_theory import experiment, storage
        from gram_theory.report import stage_name
        from utils.progress import Steps
        from utils.threads import available_cpus, cpu_threads

        threads = config.threads or available_cpus()
        with cpu_threads(threads):
            setup = experiment.prepare(config)
            phi_stored = storage.phi_is_stored(files, setup.gram)
            with (
                Steps(config.points * config.solves, "solves") as solves,
                Steps(config.points, "sweep points", enabled=config.sweep) as sweep,
            ):

                def on_round(record):
                    solves.done(
                        f"wd={record.lbd:g} corruption={record.eta:g} {stage_name(record.round)}: "
                        f"residual {record.residual:.1e}, {record.iterations} iterations, "
                        f"{record.seconds:.2f} s"
                    )

                def on_point(point):
                    sweep.done(
                        f"wd={point.lbd:g} corruption={point.eta:g}: "
                        f"{stage_name(config.solves)} {point.accuracy[-1, 2]:.2f} % correct"
                    )

                points = experiment.run(config, setup, on_round, on_point)
            figures = _figures(setup, points, files, settings_caption(config)) if config.plots else []
            with Steps(len(figures), "figures", enabled=bool(figures)) as drawing:  # seconds of matplotlib each
                figures = [(path, _counted(draw, drawing, path.name)) for path, draw in figures]
                written = storage.save(
                    config, setup, points, files, threads=threads, write_phi=not phi_stored, figures=figures
                )
    return points, written


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    with warnings.catch_warnings():
        if not config.verbose:
            warnings.simplefilter("ignore")  # library warnings only with -v: failures are one line
        points, written = solve(config)
    from gram_theory import report

    for row in points:
        print(report.sweep_table(row) if config.sweep else report.point_table(row[0]))
        note = report.undetermined_note(row)
        print(f"{note}\n" if note else "")
    if not config.exact:
        total = config.points * config.solves
        missed = sum(int((~p.converged[1:]).sum()) for row in points for p in row)
        print(f"{missed} of {total} solves missed tol {config.tol:g} (converged: false in the file)")
    for path in written:
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    run_script(main)
