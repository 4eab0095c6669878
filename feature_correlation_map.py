"""Feature correlations of datasets: a statistics table, class-correlation heatmaps, dendrograms, Gram images.

For each input (``-d NAME …``, ``--features FILE …``; ``digits`` when neither is given): the
class-similarity matrix M as a heatmap in dendrogram order with the clusters boxed, the dendrogram
labelled with class names, the Gram matrix of ``--per-class`` sampled training instances per class
and its eigenvalues. One statistics table covers all inputs (Markdown, printed and written).

Names say what distinguishes each output, so that different commands never overwrite each other:
``correlation_stats-LABEL+LABEL….md`` for the table, ``LABEL-class-correlation``, ``LABEL-dendrogram``,
``LABEL-gram-per-classN-seedS`` and ``LABEL-gram-spectrum-per-classN-seedS`` (``.png`` + ``.pdf``)
for the figures, where LABEL is the dataset name (``NAME-rDEPTH`` for an image dataset, whose features
depend on the backbone) or the feature file's name. Everything is rendered first and then written as one
group: the files appear together or not at all. See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from utils import checks
from utils.cli import Parser, add_out_dir, add_seed, add_verbose
from utils.errors import UsageError, UserError, exits_cleanly, run_script
from utils.outputs import planned_outputs
from utils.progress import Steps

log = logging.getLogger("feature_correlation_map")
DEFAULT_DATASET = "digits"
STATS_PREFIX = "correlation_stats"
# A table covering many inputs is named by the first few and a hash of all, to stay a legal file name.
MAX_TABLE_NAME = 120
TABLE_NAME_LABELS = 3


def build_parser() -> argparse.ArgumentParser:
    from data.arguments import add_data_arguments

    parser = Parser(prog="feature_correlation_map.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, many_datasets=True, many_files=True, default_dataset=None)
    gram = parser.add_argument_group("Gram matrix")
    gram.add_argument(
        "--per-class",
        type=int,
        default=20,
        metavar="N",
        help="training instances sampled per class for the Gram image and spectrum (at least 2)",
    )
    add_seed(gram, 0, help="seed of that sample (default 0)")
    out = parser.add_argument_group("outputs")
    add_out_dir(out, "reports", help="folder for the table and figures")
    add_verbose(out)
    return parser


def _file_label(path: Path) -> str:
    """A feature file's label: its name without the suffix, other characters than [A-Za-z0-9._-] as _."""
    label = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)
    return "_" + label[1:] if label.startswith(".") else label


@dataclasses.dataclass(frozen=True)
class Input:
    """One dataset or feature file to analyse; ``label`` names its figures."""

    flag: str  # "-d" or "--features"
    value: str | Path
    label: str

    def __str__(self) -> str:
        return f"{self.flag} {self.value}"


@dataclasses.dataclass(frozen=True)
class CorrelationConfig:
    """What one ``feature_correlation_map.py`` command analyses and where it writes."""

    datasets: tuple[str, ...] = ()
    feature_files: tuple[Path, ...] = ()
    per_class: int = 20
    seed: int = 0
    out: Path = Path("reports")
    backbone: str = "r34"  # the image datasets' backbone, as their labels carry it: r34, r50-random, vit_b_16, …

    @property
    def inputs(self) -> tuple[Input, ...]:
        """The ``-d`` datasets, then the ``--features`` files; ``digits`` when neither is given."""
        from data.registry import IMAGE_DATASETS

        names = self.datasets or (() if self.feature_files else (DEFAULT_DATASET,))
        return (
            *(Input("-d", name, name + (f"-{self.backbone}" if name in IMAGE_DATASETS else "")) for name in names),
            *(Input("--features", path, _file_label(path)) for path in self.feature_files),
        )

    def validate(self) -> CorrelationConfig:
        """Refuse, before any work, settings that cannot work; returns self."""
        from data.registry import DATASET_NAMES

        checks.integer("--per-class", self.per_class, 2)
        checks.seed("--seed", self.seed)
        for name in self.datasets:
            if name not in DATASET_NAMES:
                raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
        for path in self.feature_files:
            if not path.expanduser().exists():
                raise UsageError(f"--features {path} does not exist")
            if not path.expanduser().is_file():
                raise UsageError(f"--features {path} is a folder, not a file; give a .npz or .pt file")
            if path.expanduser().stat().st_size == 0:
                raise UsageError(f"--features {path} is empty (0 bytes); write it with numpy.savez or torch.save")
        seen: dict[object, Input] = {}
        for item in self.inputs:
            key = item.value if item.flag == "-d" else Path(item.value).expanduser().resolve()
            if key in seen:
                raise UsageError(f"{item.flag} {item.value} is given twice; give each input once")
            seen[key] = item
        by_label: dict[str, Input] = {}
        for item in self.inputs:
            if item.label in by_label:
                raise UsageError(
                    f"{by_label[item.label]} and {item} would both write the figures {item.label}-*; "
                    "give each dataset once and rename one of the feature files"
                )
            by_label[item.label] = item
        return self

    @property
    def table_path(self) -> Path:
        """``correlation_stats-LABEL+LABEL….md``: named by the inputs it covers, in the order given."""
        labels = [item.label for item in self.inputs]
        name = f"{STATS_PREFIX}-{'+'.join(labels)}"
        if len(name) > MAX_TABLE_NAME:
            digest = hashlib.sha256("\n".join(labels).encode()).hexdigest()[:8]
            name = (
                f"{STATS_PREFIX}-{'+'.join(labels[:TABLE_NAME_LABELS])}+{len(labels) - TABLE_NAME_LABELS}-more-{digest}"
            )
        return self.out / f"{name}.md"

    def figure_stem(self, item: Input, kind: str) -> Path:
        """``OUT/LABEL-KIND``, with ``-per-classN-seedS`` for the figures of the instance sample."""
        from analysis.correlation import SAMPLED_KINDS

        sample = f"-per-class{self.per_class}-seed{self.seed}" if kind in SAMPLED_KINDS else ""
        return self.out / f"{item.label}-{kind}{sample}"

    def output_paths(self) -> list[Path]:
        """Every file the command writes."""
        from analysis.correlation import FIGURE_KINDS

        stems = [self.figure_stem(item, kind) for item in self.inputs for kind in FIGURE_KINDS]
        return [self.table_path] + [stem.with_name(f"{stem.name}.{fmt}") for stem in stems for fmt in ("png", "pdf")]

    def check_features(self, item: Input, features) -> None:
        """Refuse loaded features the analysis cannot use, before any of it runs."""
        import numpy as np

        from analysis.correlation import GRAM_BYTES_PER_ENTRY, sample_count

        where = str(item)
        k = features.num_classes
        if k < 2:
            raise UserError(f"{where} has {k} class; the analysis needs at least 2")
        counts = np.bincount(features.train_labels, minlength=k)
        if not counts.any():
            raise UserError(f"{where} has no training samples; the analysis needs them")
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            names = ", ".join(features.class_names[i] for i in empty[:5]) + (", …" if empty.size > 5 else "")
            raise UserError(
                f"{where}: {empty.size} class(es) have no training samples ({names}); every class needs at least one"
            )
        n = sample_count(features.train_labels, k, self.per_class)
        checks.memory(
            f"the Gram image of {n} sampled instances of {item.label} (--per-class {self.per_class})",
            GRAM_BYTES_PER_ENTRY * n * n,
            "lower --per-class",
        )


def backbone_label(options) -> str:
    """The image datasets' label token: r18/r34/r50 for the paper's ResNets, else the architecture; -random
    for random weights, -<weights> for weights other than the default."""
    spec = options.backbone_spec()
    arch = re.sub(r"^resnet(18|34|50)$", r"r\1", spec.arch)
    if options.weights == "none":
        return f"{arch}-random"
    return arch if options.weights == "default" else f"{arch}-{re.sub(r'[^A-Za-z0-9._-]', '_', options.weights)}"


def config_from_args(args: argparse.Namespace, options) -> CorrelationConfig:
    return CorrelationConfig(
        datasets=tuple(args.dataset or ()),
        feature_files=tuple(args.features or ()),
        per_class=args.per_class,
        seed=args.seed,
        out=args.out,
        backbone=backbone_label(options),
    )


def load_inputs(config: CorrelationConfig, options) -> list[tuple[Input, object]]:
    """Load and check every input (a line per input when stderr is not a terminal)."""
    from data import load_feature_file, load_feature_set

    loaded = []
    with Steps(len(config.inputs), "inputs loaded") as steps:
        for item in config.inputs:
            if item.flag == "--features":
                features = load_feature_file(item.value)
            else:
                features = load_feature_set(item.value, options)
            config.check_features(item, features)
            loaded.append((item, features))
            steps.done(
                f"{item.label} ({features.num_classes} classes, {features.train_features.shape[0]} training samples)"
            )
    return loaded


def render_outputs(config: CorrelationConfig, loaded) -> tuple[str, dict[Path, bytes]]:
    """The statistics table and the bytes of every output file, nothing written yet."""
    from analysis.correlation import dataset_figures, stats_table
    from analysis.figures import figure_files

    rows, files = [], {}
    with Steps(len(loaded), "datasets analysed") as steps:
        for item, features in loaded:
            row, figures = dataset_figures(features, config.per_class, config.seed)
            for kind, figure in figures.items():
                files.update(figure_files(figure, config.figure_stem(item, kind)))
            rows.append(row)
            steps.done(f"{item.label} ({len(figures)} figures)")
    table = stats_table(rows)
    return table, {config.table_path: (table + "\n").encode("utf-8"), **files}


def replaced_files(files: dict[Path, bytes]) -> list[Path]:
    """The outputs that exist already with other content (another backbone's features, a changed file)."""
    replaced = []
    for path, data in files.items():
        if path.is_file() and (path.stat().st_size != len(data) or path.read_bytes() != data):
            replaced.append(path)
    return replaced


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    from data.arguments import data_options

    args = build_parser().parse_args(argv)
    options = data_options(args)
    config = config_from_args(args, options).validate()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    with planned_outputs() as plan:
        plan.folder(config.out, "--out")
        for path in config.output_paths():
            if path.is_dir():
                raise UserError(f"{path} is a folder, where --out's output of that name goes; remove or rename it")
            plan.file(path, "--out")
        from analysis.figures import write_files

        with warnings.catch_warnings():
            if not args.verbose:
                warnings.simplefilter("ignore")
            loaded = load_inputs(config, options)
            table, files = render_outputs(config, loaded)
        replaced = replaced_files(files)
        write_files(files)
    print(table)
    figures = sum(path.suffix == ".png" for path in files)
    print(f"wrote {config.table_path} and {figures} figures (PNG and PDF) in {config.out}{os.sep}")
    if replaced:
        print(
            f"replaced {len(replaced)} earlier file(s) with other content: "
            f"{', '.join(path.name for path in replaced[:4])}{', …' if len(replaced) > 4 else ''}"
        )
    return 0


if __name__ == "__main__":
    run_script(main)
