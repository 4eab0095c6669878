"""The report of one selection of runs: G.3 tables (Markdown, LaTeX) and the gain figure (PNG, PDF) under one name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from matplotlib.figure import Figure

from analysis import settings as settings_mod
from analysis.correction_plots import correction_figure, has_correction
from analysis.figures import figure_files, write_files
from analysis.gain_plots import DEFAULT_GAIN_ETAS, gain_figure
from analysis.report_tables import (
    GAIN_STAGES,
    accuracy_table,
    describe_setting,
    gain_table,
    method_stages,
    methods_table,
    table_stages,
    to_latex,
    to_markdown,
)
from analysis.selection import DatasetResults, Filters, listed_runs, select
from utils.errors import UsageError
from utils.escaping import latex_label

METRIC_NAMES = {"test": "test accuracy", "final": "final test accuracy", "train": "training accuracy"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    store: Path
    results: tuple[Path, ...] = ()  # restrict to the runs these CSVs list
    filters: Filters = Filters()
    metric: str = "test"  # a key of METRIC_NAMES
    columns: tuple[float, ...] | None = None  # η columns of the tables; None: every η the dataset has
    gain_etas: tuple[float, ...] = DEFAULT_GAIN_ETAS
    out: Path = Path("reports")
    name: str | None = None  # None: made from the datasets, the noise type and the setting
    every_setting: bool = False  # one report per setting instead of the default one


@dataclasses.dataclass(frozen=True)
class Report:
    name: str
    markdown: str
    latex: str
    figure: Figure
    correction: Figure | None = None  # corrected and kept labels per stage, when the runs measured them


def default_name(selected: list[DatasetResults], metric: str) -> str:
    """The datasets, the noise type and what distinguishes the setting from the default:
    ``digits_cc``, ``digits-synthetic_cc_wd0.0005_independent``."""
    tokens = list(
        dict.fromkeys(
            token for results in selected for token in settings_mod.name_tokens(results.setting, results.dataset)
        )
    )
    ctypes = "-".join(dict.fromkeys(str(r.setting.get("ctype")) for r in selected))
    parts = ["-".join(dict.fromkeys(r.dataset for r in selected)), ctypes, *tokens]
    if metric != "test":
        parts.append(f"metric-{metric}")
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", "_".join(parts))


def check_name(name: str) -> str:
    """A report name is a plain file-name stem: letters, digits and . _ + = -, not starting with a dot."""
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits and . _ + = - only (no '/', not starting with '.')")
    return name


def build_reports(config: ReportConfig, records) -> list[Report]:
    """Select the runs, then render every table and figure in memory (nothing is written)."""
    listed = listed_runs(config.results) if config.results else None
    selected = select(records, config.filters, config.metric, listed, config.every_setting)
    groups: list[list[DatasetResults]] = []
    if config.every_setting:
        by_setting: dict[tuple, list[DatasetResults]] = {}
        for results in selected:
            key = tuple(settings_mod.name_tokens(results.setting, results.dataset))
            by_setting.setdefault(key, []).append(results)
        groups = list(by_setting.values())
    else:
        groups = [selected]
    reports = []
    for group in groups:
        name = check_name(config.name) if config.name and len(groups) == 1 else default_name(group, config.metric)
        if config.name and len(groups) > 1:
            name = f"{check_name(config.name)}_{name}"
        reports.append(_render(config, group, name))
    return reports


def _render(config: ReportConfig, selected: list[DatasetResults], name: str) -> Report:
    metric = METRIC_NAMES[config.metric]
    source = (
        f"Runs from the store {config.store}"
        + (f", those listed in {', '.join(map(str, config.results))}" if config.results else "")
        + "."
    )
    markdown = [f"# {name}", "", source]
    latex = [f"% {name}: {source}", r"% Needs \usepackage{booktabs}."]
    for results in selected:
        setting = describe_setting(results)
        accuracy = accuracy_table(results, config.columns or results.etas, metric)
        gains = gain_table(results, config.gain_etas, metric)
        markdown += ["", to_markdown(accuracy, setting), "", to_markdown(gains, setting)]
        latex += ["", to_latex(accuracy, setting, label=latex_label(f"tab:{name}:{results.dataset}"))]
        if set(method_stages(results)) - set(table_stages(results)):  # baselines present: every method side by side
            methods = methods_table(results, config.columns or results.etas, metric)
            markdown += ["", to_markdown(methods, setting)]
            latex += ["", to_latex(methods, setting, label=latex_label(f"tab:{name}:{results.dataset}:methods"))]
    figure = gain_figure(selected, config.gain_etas, GAIN_STAGES, ylabel=f"gain in {metric} (points)")
    correction = None
    if has_correction(selected):
        correction = correction_figure(
            selected, config.columns or sorted({e for r in selected for e in r.etas if e > 0})
        )
    return Report(name, "\n".join(markdown) + "\n", "\n".join(latex) + "\n", figure, correction)


def report_files(report: Report, out: Path) -> dict[Path, bytes]:
    """``<name>_table.md``, ``<name>_table.tex``, ``<name>_gain.png`` and ``<name>_gain.pdf`` under ``out``."""
    stem = Path(out) / report.name
    files = {
        Path(f"{stem}_table.md"): report.markdown.encode(),
        Path(f"{stem}_table.tex"): report.latex.encode(),
        **figure_files(report.figure, Path(f"{stem}_gain")),
    }
    if report.correction is not None:
        files.update(figure_files(report.correction, Path(f"{stem}_correction")))
    return files


def write_reports(reports: list[Report], out: Path) -> list[Path]:
    """Every file of every report, written as one group: all appear, or none."""
    files: dict[Path, bytes] = {}
    for report in reports:
        files.update(report_files(report, out))
    return write_files(files)
