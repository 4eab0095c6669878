"""Tables and distillation-gain plots from results CSVs: the paper's Appendix G.3 tables and gain bar plots.

Runs are selected by the values in the CSV's columns (``--dataset``, ``--ctype``, ``--wd``, ``--lr``,
``--depth``, ``--optimizer``, ``--epochs``, ``--selection``, ``--last``); rows that still hold more
than one setting for a dataset are an error. Writes ``<name>_table.md``, ``<name>_table.tex``,
``<name>_gain.png`` and ``<name>_gain.pdf`` under ``--out`` and prints the Markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from analysis.gain_plots import DEFAULT_GAIN_ETAS
from analysis.report_outputs import METRIC_NAMES, ReportConfig, build_report, write_report
from analysis.selection import Filters, parse_per_dataset
from utils.cli import Parser
from utils.errors import UsageError, exits_cleanly


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="report.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, nargs="+", required=True, metavar="CSV",
                        help="results CSV(s) written by train_linear.py, e.g. results/cc.csv")

    select = parser.add_argument_group("run selection (by the values in the CSV's columns)")
    select.add_argument("-d", "--dataset", nargs="+", default=[], metavar="NAME",
                        help="dataset(s), one panel and one table each (default: every dataset in the CSV)")
    select.add_argument("--ctype", help="noise type (column CType): sym, asym or cc")
    select.add_argument("--wd", nargs="+", default=[], metavar="VALUE",
                        help="weight decay (column WD): a value, or DATASET=VALUE per dataset")
    select.add_argument("--lr", nargs="+", default=[], metavar="VALUE",
                        help="learning rate (column LR): a value, or DATASET=VALUE per dataset")
    select.add_argument("--depth", type=int, help="ResNet depth (column Depth)")
    select.add_argument("--optimizer", help="sgd or lbfgs (column Optimizer)")
    select.add_argument("--epochs", type=int, help="epochs (column Epochs)")
    select.add_argument("--selection", help="model selection, test or val (column Selection)")
    select.add_argument("--last", type=int, choices=(0, 1),
                        help="teacher checkpoint the students learnt from, 0 best or 1 last (column Last)")

    report = parser.add_argument_group("report")
    report.add_argument("--metric", choices=tuple(METRIC_NAMES), default="test",
                        help="accuracy to report: test (column Test Acc., default), final or train")
    report.add_argument("--columns", type=float, nargs="+", metavar="ETA",
                        help="η columns of the tables (default: every η of the dataset)")
    report.add_argument("--gain-etas", type=float, nargs="+", default=list(DEFAULT_GAIN_ETAS), metavar="ETA",
                        help="η groups of the gain plots (default 0.5 0.6 0.7 0.8 0.9)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default ./reports)")
    report.add_argument("--name", help="file-name stem of the outputs (default: the datasets and the filters)")
    report.add_argument("-v", "--verbose", action="store_true", help="log how many runs each dataset keeps")
    return parser


def config_from_args(args: argparse.Namespace) -> ReportConfig:
    for flag, etas in (("--columns", args.columns or []), ("--gain-etas", args.gain_etas)):
        outside = [eta for eta in etas if not 0 <= eta <= 1]
        if outside:
            raise UsageError(f"{flag}: η must lie in [0, 1], got {', '.join(f'{eta:g}' for eta in outside)}")
        if len(set(etas)) != len(etas):
            raise UsageError(f"{flag}: a value is given twice")
    filters = Filters(datasets=tuple(dict.fromkeys(args.dataset)), ctype=args.ctype, depth=args.depth,
                      lr=parse_per_dataset("--lr", args.lr), wd=parse_per_dataset("--wd", args.wd),
                      optimizer=args.optimizer, epochs=args.epochs, selection=args.selection, last=args.last)
    return ReportConfig(results=tuple(args.results), filters=filters, metric=args.metric,
                        columns=tuple(args.columns) if args.columns else None, gain_etas=tuple(args.gain_etas),
                        out=args.out, name=args.name)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    report = build_report(config_from_args(args))
    written = write_report(report, args.out)
    print(report.markdown)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
