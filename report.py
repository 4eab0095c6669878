"""Tables and distillation-gain plots from the run store: the paper's Appendix G.3 tables and gain bar plots.

Runs come from the run store (``-c/--checkpoint``), verified; ``--results FILE`` keeps only the
runs a results CSV lists. Filters fix setting values (``--ctype``, ``--lr``, ``--wd``, …); among
the settings left, each dataset shows its default setting (or the one with most runs), named in the
output together with the other settings present and the flags that select them
(``--every-setting`` writes one report per setting). Writes ``<name>_table.md``,
``<name>_table.tex``, ``<name>_gain.png`` and ``<name>_gain.pdf`` under ``--out``, all together or
none, and prints the Markdown tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from training.settings import add_filter_arguments, check_value, filter_values
from utils import checks
from utils.cli import Parser, add_out_dir, add_store, add_verbose, configure_logging
from utils.errors import UsageError, exits_cleanly, run_script

DEFAULT_GAIN_ETAS = (0.5, 0.6, 0.7, 0.8, 0.9)
METRICS = ("test", "final", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="report.py", description=__doc__.split("\n\n")[0])
    source = parser.add_argument_group("runs")
    add_store(source, help="the run store train_linear.py wrote")
    source.add_argument(
        "--results",
        type=Path,
        nargs="+",
        default=[],
        metavar="CSV",
        help="keep only the runs these results CSVs list (column Run; default: every run of the store)",
    )

    select = parser.add_argument_group("selection (by setting values)")
    select.add_argument(
        "-d",
        "--dataset",
        nargs="+",
        default=[],
        metavar="NAME",
        help="dataset(s), one panel and one table each (default: every dataset in the store)",
    )
    select.add_argument(
        "--backbone", metavar="NAME", help="only runs of this feature map, e.g. resnet34, identity (default: any)"
    )
    select.add_argument(
        "--weights", dest="backbone_weights", metavar="NAME", help="only runs of these backbone weights (default: any)"
    )
    # One filter per setting of the table (training.settings): --ctype, --lr, --wd, --optimizer, --val-fraction …
    add_filter_arguments(select, per_dataset=True)
    select.add_argument(
        "--every-setting", action="store_true", help="one report per setting present, not only the default"
    )

    report = parser.add_argument_group("report")
    report.add_argument(
        "--metric",
        choices=METRICS,
        default="test",
        help="accuracy to report: test (the selected epoch's), final or train",
    )
    report.add_argument(
        "--columns",
        type=float,
        nargs="+",
        metavar="ETA",
        help="η columns of the tables (default: every η of the dataset)",
    )
    report.add_argument(
        "--gain-etas",
        type=float,
        nargs="+",
        default=list(DEFAULT_GAIN_ETAS),
        metavar="ETA",
        help="η groups of the gain plots",
    )
    add_out_dir(report, "reports", help="output folder")
    report.add_argument("--name", help="file-name stem of the outputs (default: datasets, noise type and setting)")
    add_verbose(report)
    return parser


def config_from_args(args: argparse.Namespace):
    from analysis.report_outputs import ReportConfig
    from analysis.selection import Filters, parse_per_dataset

    for flag, etas in (("--columns", args.columns or []), ("--gain-etas", args.gain_etas)):
        for eta in etas:
            checks.interval(flag, eta, 0.0, 1.0)
        if len(set(etas)) != len(etas):
            raise UsageError(f"{flag}: a value is given twice")
    fixed = filter_values(args)
    lr, wd = parse_per_dataset("--lr", args.lr), parse_per_dataset("--wd", args.wd)
    for name, per_dataset in (("lr", lr), ("wd", wd)):
        for value in (per_dataset.default, *dict(per_dataset.named).values()):
            if value is not None:
                check_value(name, value)
    ctype = fixed.pop("ctype", None)
    for field, value in (("backbone", args.backbone), ("weights", args.backbone_weights)):
        if value is not None:
            fixed[field] = value
    filters = Filters(
        datasets=tuple(dict.fromkeys(args.dataset)),
        ctype=ctype,
        lr=lr,
        wd=wd,
        values=tuple(fixed.items()),
    )
    return ReportConfig(
        store=args.checkpoint,
        results=tuple(args.results),
        filters=filters,
        metric=args.metric,
        columns=tuple(args.columns) if args.columns else None,
        gain_etas=tuple(args.gain_etas),
        out=args.out,
        name=args.name,
        every_setting=args.every_setting,
    )


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    config = config_from_args(args)
    if args.name is not None:
        from analysis.report_outputs import check_name

        check_name(args.name)
    if not args.checkpoint.is_dir():
        raise UsageError(
            f"-c/--checkpoint {args.checkpoint} is not a run store (no such folder); pass the folder "
            f"train_linear.py wrote its runs to"
        )
    from analysis.report_outputs import build_reports, write_reports
    from analysis.selection import refuse_damaged
    from training.store import RunStore
    from utils.outputs import planned_outputs

    store = RunStore(args.checkpoint)
    refuse_damaged(store, config.filters.datasets, config.filters.ctype)
    with planned_outputs() as plan:
        plan.folder(args.out, "--out")
        reports = build_reports(config, store.records())
        written = write_reports(reports, args.out)
    for report in reports:
        print(report.markdown)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    run_script(main)
