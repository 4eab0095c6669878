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
from utils.escaping import figure_text

MEASURES = (("corrected", "tab:blue"), ("kept", "tab:green"))


def has_correction(datasets: Sequence[DatasetResults]) -> bool:
    return any(results.measures.get("corrected") for results in datasets)


def correction_figure(datasets: Sequence[DatasetResults], etas: Sequence[float]) -> Figure:
    """One row of panels per dataset, one panel per η."""
    rows = [
        (results, eta)
        for results in datasets
        for eta in etas
        if any(key[1] == eta_key(eta) for key in results.measures.get("corrected", {}))
    ]
    columns = max(1, len({eta for _, eta in rows}))
    figure = Figure(figsize=(3.6 * columns + 1.2, 3.0 * len(datasets)), layout="constrained")
    grid = figure.subplots(len(datasets), columns, squeeze=False)
    for r, results in enumerate(datasets):
        stages = [s for s in method_stages(results) if s.method.depends_on_eta]  # the others correct no noise
        panel_etas = [eta for eta in etas if (results, eta) in rows]
        for c in range(columns):
            axes = grid[r, c]
            if c >= len(panel_etas):
                axes.set_visible(False)
                continue
            eta = panel_etas[c]
            width = 0.38
            for i, (name, colour) in enumerate(MEASURES):
                values = [
                    list(results.measures.get(name, {}).get((stage, eta_key(eta)), {}).values()) for stage in stages
                ]
                means = [np.mean(v) if v else np.nan for v in values]
                spreads = [np.std(v) if v else 0.0 for v in values]
                x = np.arange(len(stages)) + (i - 0.5) * width
                axes.bar(
                    x, means, width, yerr=spreads, color=colour, label=name, capsize=2, error_kw={"elinewidth": 0.8}
                )
            axes.set_xticks(range(len(stages)), [stage.label for stage in stages], rotation=60, ha="right", fontsize=7)
            axes.set_ylim(0, 105)
            axes.set_title(f"{figure_text(results.dataset)}, η = {eta:g}", fontsize=9)
            axes.grid(axis="y", linewidth=0.4, alpha=0.5)
        grid[r, 0].set_ylabel("training labels (%)")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", frameon=False, fontsize="small")
    return figure
