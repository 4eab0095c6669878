"""Label averaging, measured: how each stage's predictions on the training set correct the noisy labels.

For every dataset and η a panel with two bars per stage: *corrected*, the share of corrupted training
labels the stage's selected checkpoint predicts as the true class, and *kept*, the share of clean
labels it still predicts right (mean over seeds, with the standard deviation, ddof 0). The paper's
mechanism says students should correct more than the teacher while keeping most clean labels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.report_tables import method_stages
from analysis.selection import DatasetResults, eta_key
from analysis.settings import non_default_caption
from utils.escaping import figure_text

MEASURES = (("corrected", "tab:blue"), ("kept", "tab:green"))
MAX_COLUMNS = 3  # panels wrap into rows, so that the figure stays readable at page width
PANEL_SIZE = (3.0, 2.7)  # inches per panel


def has_correction(datasets: Sequence[DatasetResults]) -> bool:
    return any(results.measures.get("corrected") for results in datasets)


def correction_figure(datasets: Sequence[DatasetResults], etas: Sequence[float]) -> Figure:
    """One panel per dataset and η that has measures, in reading order, at most :data:`MAX_COLUMNS` a row;
    a stage without a measure in a panel is marked "n/a" (never drawn as zero)."""
    panels = [
        (results, eta)
        for results in datasets
        for eta in etas
        if any(key[1] == eta_key(eta) for key in results.measures.get("corrected", {}))
    ]
    columns = max(1, min(MAX_COLUMNS, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(PANEL_SIZE[0] * columns + 1.0, PANEL_SIZE[1] * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[len(panels) :]:
        axes.set_visible(False)
    for index, (results, eta) in enumerate(panels):
        stages = [s for s in method_stages(results) if s.method.depends_on_eta]
        axes = grid.flat[index]
        width = 0.38
        for i, (name, colour) in enumerate(MEASURES):
            values = [list(results.measures.get(name, {}).get((stage, eta_key(eta)), {}).values()) for stage in stages]
            means = [np.mean(v) if v else np.nan for v in values]
            spreads = [np.std(v) if v else 0.0 for v in values]
            x = np.arange(len(stages)) + (i - 0.5) * width
            axes.bar(x, means, width, yerr=spreads, color=colour, label=name, capsize=2, error_kw={"elinewidth": 0.8})
            for position, mean in zip(x, means):
                if np.isnan(mean):  # a missing cell is marked, never drawn as a zero-height bar
                    axes.text(position, 2, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="0.45")
        axes.set_xticks(range(len(stages)), [stage.label for stage in stages], rotation=60, ha="right", fontsize=8)
        axes.tick_params(axis="y", labelsize=8)
        axes.set_ylim(0, 105)
        axes.set_xlim(-0.7, len(stages) - 0.3)
        caption = non_default_caption(results.setting, results.dataset)  # e.g. seeding independent
        title = f"{figure_text(results.dataset)}, η = {eta:g}" + (f"\n{figure_text(caption)}" if caption else "")
        axes.set_title(title, fontsize=9)
        axes.grid(axis="y", linewidth=0.4, alpha=0.5)
        if index % columns == 0:
            axes.set_ylabel("training labels (%)", fontsize=8)
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", frameon=False, fontsize="small")
    return figure
