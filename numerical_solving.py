"""Solve the paper's synthetic Gram-matrix theory of self-distillation exactly, round by round.

    python numerical_solving.py                       # K=4, n=500, eta=0.5, 10 rounds, exact
    python numerical_solving.py --eta 0.1 0.5 0.9 --lbd 1e-5 1e-4 --plots
    python numerical_solving.py --approx              # closed form of the linearised rounds
    python numerical_solving.py --method adam         # the reference's Adam optimisation

Round t = 1 is the teacher (trained on the given labels), t >= 2 the students. Prints per-round
results (or a round x eta table for a sweep) and the path of the saved ``.npz``; see docs/solver.md.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from gram_theory import experiment, report, storage
from utils.cli import Parser, add_bool_flag
from utils.errors import exits_cleanly

DEFAULTS = experiment.Config()


def build_parser() -> Parser:
    parser = Parser(prog="numerical_solving.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=DEFAULTS.k, help="number of classes K (default %(default)s)")
    parser.add_argument("--n", type=int, default=DEFAULTS.n, help="samples per class (default %(default)s)")
    parser.add_argument("--lbd", type=float, nargs="+", default=list(DEFAULTS.lbd),
                        help="regularisation lambda; several values sweep (default %(default)s)")
    parser.add_argument("--c", type=float, default=DEFAULTS.c, help="intra-class correlation (default %(default)s)")
    parser.add_argument("--d", type=float, default=DEFAULTS.d, help="inter-class correlation (default %(default)s)")
    parser.add_argument("--eta", type=float, nargs="+", default=list(DEFAULTS.eta),
                        help="label corruption rate; several values sweep (default %(default)s)")
    parser.add_argument("--epsilon", type=float, default=DEFAULTS.epsilon,
                        help="noise level of the Gram matrix (default %(default)s)")
    parser.add_argument("--max_dist", type=int, default=DEFAULTS.max_dist,
                        help="rounds: the teacher and max_dist - 1 students (default %(default)s)")
    parser.add_argument("--max_iter", type=int, default=DEFAULTS.max_iter,
                        help="iteration cap per round: Adam steps or Newton iterations (default %(default)s)")
    add_bool_flag(parser, "--approx", help="linearise the softmax, (1 + z) / K: closed-form rounds")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of Phi and labels (default %(default)s)")
    parser.add_argument("--out", default=DEFAULTS.out, help="folder for results (default %(default)s)")
    parser.add_argument("--tol", type=float, default=DEFAULTS.tol,
                        help="max-norm residual every exact round must reach (default %(default)s)")
    parser.add_argument("--method", choices=experiment.METHODS, default=DEFAULTS.method,
                        help="newton: exact (default); adam: the reference's optimiser, for comparison")
    parser.add_argument("--gram", choices=("features", "reference"), default=DEFAULTS.gram,
                        help="features: a true Gram matrix (default); reference: the reference's "
                             "unsymmetrised noisy matrix")
    add_bool_flag(parser, "--plots", help="also write accuracy-vs-eta, spectrum and simplex figures")
    return parser


def parse_config(argv: Sequence[str] | None) -> experiment.Config:
    args = build_parser().parse_args(argv)
    values = vars(args)
    values["lbd"] = tuple(values["lbd"])
    values["eta"] = tuple(values["eta"])
    return experiment.Config(**values)


def write_plots(config: experiment.Config, setup: experiment.Setup,
                points: list[list[experiment.PointResult]], npz: Path) -> list[Path]:
    # matplotlib takes a noticeable time to import: only plotting runs pay for it.
    from gram_theory import plots

    base = npz.with_suffix("")
    written = []
    for row in points:
        tag = f"lbd{row[0].lbd:g}"
        if len(row) > 1:
            written.append(plots.accuracy_vs_eta(row, Path(f"{base}_accuracy_{tag}.png")))
        for point in row:
            name = f"{tag}_eta{point.eta:g}"
            written.append(plots.label_averaging_spectrum(setup.spectrum, point, Path(f"{base}_spectrum_{name}.png")))
            written.append(plots.simplex(point, setup.labels, Path(f"{base}_simplex_{name}.png")))
    return written


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(argv)
    experiment.validate(config)
    setup = experiment.prepare(config)
    total = len(config.lbd) * len(config.eta) * config.max_dist
    with tqdm(total=total, desc="rounds", unit="round", disable=None) as bar:
        points = experiment.run(config, setup, on_round=lambda record: bar.update())
    path = storage.save(config, setup, points)
    figures = write_plots(config, setup, points, path) if config.plots else []
    for row in points:
        print(report.sweep_table(row) if config.sweep else report.point_table(row[0]))
        note = report.undetermined_note(row)
        print(f"{note}\n" if note else "")
    if not config.exact:
        missed = sum(int((~p.converged[1:]).sum()) for row in points for p in row)
        print(f"{missed} of {total} rounds missed tol {config.tol:g} (converged: false in the file)")
    for saved in (path, *figures):
        print(f"saved {saved}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        # Output piped into e.g. `head`: the results are already saved; stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
