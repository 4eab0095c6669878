"""Feature correlations of datasets: a statistics table, class-correlation heatmaps, dendrograms, Gram images.

For each dataset: the class-similarity matrix M as a heatmap in dendrogram order with the clusters
boxed, the dendrogram labelled with class names, the Gram matrix of ``--per-class`` sampled
training instances per class and its eigenvalues. One statistics table covers all datasets
(Markdown, printed and written to ``OUT/correlation_stats.md``). See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from analysis import correlation as corr
from analysis.cli_support import load_feature_sets
from analysis.figures import save_figure
from data.arguments import add_data_arguments
from utils.atomic import write_text
from utils.cli import Parser
from utils.errors import UsageError, UserError, exits_cleanly

log = logging.getLogger("feature_correlation_map")
STATS_FILE = "correlation_stats.md"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="feature_correlation_map.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, many_datasets=True, many_files=True, default_dataset=None)
    gram = parser.add_argument_group("Gram matrix")
    gram.add_argument("--per-class", type=int, default=20, metavar="N",
                      help="training instances sampled per class for the Gram image and spectrum (default 20)")
    gram.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                     help="folder for the table and figures (default ./reports)")
    out.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def dataset_figures(features, per_class: int, seed: int, out: Path) -> tuple[corr.CorrelationStats, list[Path]]:
    """The statistics row of one dataset and its four figures (PNG + PDF each)."""
    try:
        correlation = corr.class_correlation(features)
    except ValueError as error:  # a class without training samples
        raise UserError(f"{features.name}: {error}") from None
    sample = corr.sample_instances(features, per_class, seed, correlation.order)
    eigenvalues = corr.gram_spectrum(sample.unit)
    figures = {
        "class-correlation": corr.plot_class_correlation(features.name, features.class_names, correlation),
        "dendrogram": corr.plot_dendrogram(features.name, features.class_names, correlation),
        "gram": corr.plot_gram(features.name, features.class_names, sample),
        "gram-spectrum": corr.plot_spectrum(features.name, eigenvalues, features.num_classes),
    }
    paths = []
    for suffix, figure in figures.items():
        paths += save_figure(figure, out / f"{features.name}-{suffix}")
    return corr.statistics(features, correlation), paths


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.per_class < 2:
        raise UsageError(f"--per-class must be at least 2, got {args.per_class}")
    feature_sets = load_feature_sets(args)
    names = [features.name for features in feature_sets]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"two inputs are named {repeated[0]!r} and their figures would overwrite each other; "
                        "give each dataset once and rename one of the feature files")
    rows, written = [], []
    for features in feature_sets:
        if features.num_classes < 2:
            raise UserError(f"{features.name} has {features.num_classes} class; the analysis needs at least 2")
        log.info("%s: %d classes, %d training samples", features.name, features.num_classes,
                 features.train_features.shape[0])
        row, paths = dataset_figures(features, args.per_class, args.seed, args.out)
        rows.append(row)
        written += paths
    table = corr.stats_table(rows)
    write_text(args.out / STATS_FILE, table + "\n")
    print(table)
    print(f"wrote {args.out / STATS_FILE} and {len(written)} figures in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
