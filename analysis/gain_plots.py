"""Distillation-gain bar plots: student − teacher accuracy per η, one panel per dataset.

Each bar is the mean of the per-seed differences with their standard deviation (ddof 0) as the
error bar. A cell without a seed that has both sides gets no bar but a visible "n/a", so a
missing experiment never reads as a zero gain. Figures are built on ``matplotlib.figure.Figure``
(no pyplot state), and files are written through a temp file and a rename.
"""

from __future__ import annotations

import math
from typing import Sequence

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis import settings as settings_mod
from analysis.report_tables import Cells, gain_cells
from analysis.selection import DatasetResults
from utils.escaping import figure_text
from utils.stages import Stage

DEFAULT_GAIN_ETAS = (0.5, 0.6, 0.7, 0.8, 0.9)
PANELS_PER_ROW = 3
MISSING_MARK = "n/a"


def _colours(stages: Sequence[Stage]) -> list:
    """Students in blues, darker with each round; the PLL student in orange."""
    students = [stage for stage in stages if stage.is_student]
    blues = colormaps["Blues"]
    shade = {stage: blues(0.4 + 0.5 * i / max(len(students) - 1, 1)) for i, stage in enumerate(students)}
    return [shade.get(stage, "tab:orange") for stage in stages]


def _draw_panel(axes, cells: Cells, stages: Sequence[Stage], etas: Sequence[float], colours: list) -> None:
    width = 0.8 / len(stages)
    for i, (stage, colour) in enumerate(zip(stages, colours)):
        for j, eta in enumerate(etas):
            x = j - 0.4 + width * (i + 0.5)
            cell = cells[(stage, eta)]
            if cell is None:
                axes.text(x, 0, MISSING_MARK, rotation=90, ha="center", va="bottom", fontsize=7, color="0.35")
            else:
                axes.bar(
                    x,
                    cell.mean,
                    width,
                    yerr=cell.std,
                    color=colour,
                    edgecolor="0.2",
                    linewidth=0.4,
                    capsize=2,
                    error_kw={"elinewidth": 0.8},
                )
    axes.axhline(0, color="0.2", linewidth=0.8)
    axes.set_xticks(range(len(etas)), [f"{eta:g}" for eta in etas])
    axes.set_xlim(-0.5, len(etas) - 0.5)
    axes.set_xlabel("η (corruption rate)")
    if not axes.patches:
        axes.set_ylim(-1, 1)
    axes.grid(axis="y", linewidth=0.4, alpha=0.5)


def gain_figure(
    datasets: Sequence[DatasetResults],
    etas: Sequence[float],
    stages: Sequence[Stage],
    ylabel: str = "gain in test accuracy (points)",
) -> Figure:
    """One panel per dataset: a group of bars per η, one bar per stage (student t, PLL)."""
    columns = min(len(datasets), PANELS_PER_ROW)
    rows = math.ceil(len(datasets) / columns)
    panel_width = max(3.0, 1.0 + 0.18 * len(etas) * len(stages))
    figure = Figure(figsize=(panel_width * columns + 1.3, 3.2 * rows), layout="constrained")  # + the legend
    grid = figure.subplots(rows, columns, squeeze=False)
    colours = _colours(stages)
    for axes, results in zip(grid.flat, datasets):
        _draw_panel(axes, gain_cells(results, stages, etas), stages, etas, colours)
        caption = settings_mod.non_default_caption(results.setting, results.dataset)
        axes.set_title(figure_text(results.dataset) + (f"\n{figure_text(caption)}" if caption else ""), fontsize=10)
    for axes in grid[:, 0]:
        axes.set_ylabel(ylabel)
    for axes in grid.flat[len(datasets) :]:
        axes.set_visible(False)
    legend = [
        Patch(facecolor=colour, edgecolor="0.2", linewidth=0.4, label=stage.label)
        for stage, colour in zip(stages, colours)
    ]
    figure.legend(handles=legend, loc="outside right upper", frameon=False, fontsize="small")
    return figure
