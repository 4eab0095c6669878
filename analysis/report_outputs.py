"""The report of one selection of runs: G.3 tables (Markdown, LaTeX) and the gain figure (PNG, PDF) under one name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from matplotlib.figure import Figure

from analysis.figures import save_figure
from analysis.gain_plots import DEFAULT_GAIN_ETAS, gain_figure
from analysis.report_tables import GAIN_STAGES, accuracy_table, describe_setting, gain_table, to_latex, to_markdown
from analysis.selection import Filters, PerDataset, format_value, read_results, select
from utils.atomic import write_text
from utils.errors import UsageError

METRIC_NAMES = {"test": "test accuracy", "final": "final test accuracy", "train": "training accuracy"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    results: tuple[Path, ...]
    filters: Filters = Filters()
    metric: str = "test"  # a key of METRIC_NAMES
    columns: tuple[float, ...] | None = None  # η columns of the tables; None: every η the dataset has
    gain_etas: tuple[float, ...] = DEFAULT_GAIN_ETAS
    out: Path = Path("reports")
    name: str | None = None  # None: made from the datasets and the filters


@dataclasses.dataclass(frozen=True)
class Report:
    name: str
    markdown: str
    latex: str
    figure: Figure


def default_name(filters: Filters, datasets: list[str], metric: str) -> str:
    """The datasets and every filter that is set: ``digits_cc``, ``cifar100-flowers102_cc_wdcifar100=5e-05+…``."""
    tokens = {"": filters.ctype, "r": filters.depth, "lr": filters.lr.describe() or None,
              "wd": filters.wd.describe() or None, "opt-": filters.optimizer, "ep": filters.epochs,
              "select-": filters.selection, "last": filters.last, "metric-": None if metric == "test" else metric}
    parts = ["-".join(datasets)] + [f"{prefix}{format_value(value)}" for prefix, value in tokens.items()
                                    if value is not None]
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", "_".join(parts).replace(" ", "+"))


def describe_filters(filters: Filters) -> str:
    described = []
    for field in dataclasses.fields(filters):
        value = getattr(filters, field.name)
        if value == field.default:
            continue
        if isinstance(value, PerDataset):
            text = value.describe()
        elif isinstance(value, tuple):
            text = " ".join(value)
        else:
            text = format_value(value)
        described.append(f"{field.name} {text}")
    return ", ".join(described) or "none"


def check_name(name: str) -> str:
    """A report name is a plain file-name stem: letters, digits and . _ + = -, not starting with a dot."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits and . _ + = - only (no '/', not starting with '.')")
    return name


def build_report(config: ReportConfig) -> Report:
    """Read and select the runs, then render every table and the figure in memory (nothing is written)."""
    selected = select(read_results(config.results, config.metric), config.filters)
    datasets = [results.dataset for results in selected]
    name = check_name(config.name) if config.name else default_name(config.filters, datasets, config.metric)
    metric = METRIC_NAMES[config.metric]
    source = f"Runs from {', '.join(map(str, config.results))}; filters: {describe_filters(config.filters)}."
    markdown = [f"# {name}", "", source]
    latex = [f"% {name}: {source}", r"% Needs \usepackage{booktabs}."]
    for results in selected:
        setting = describe_setting(results)
        accuracy = accuracy_table(results, config.columns or results.etas, metric)
        gains = gain_table(results, config.gain_etas, metric)
        markdown += ["", to_markdown(accuracy, setting), "", to_markdown(gains, setting)]
        latex += ["", to_latex(accuracy, setting, label=f"tab:{name}:{results.dataset}")]
    figure = gain_figure(selected, config.gain_etas, GAIN_STAGES, ylabel=f"gain in {metric} (points)")
    return Report(name, "\n".join(markdown) + "\n", "\n".join(latex) + "\n", figure)


def write_report(report: Report, out: Path) -> list[Path]:
    """``<name>_table.md``, ``<name>_table.tex``, ``<name>_gain.png`` and ``<name>_gain.pdf`` under ``out``."""
    stem = Path(out) / report.name
    markdown, latex = Path(f"{stem}_table.md"), Path(f"{stem}_table.tex")
    write_text(markdown, report.markdown)
    write_text(latex, report.latex)
    return [markdown, latex, *save_figure(report.figure, Path(f"{stem}_gain"))]
