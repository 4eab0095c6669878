"""Figures at a readable size: the label-correction figure wraps into rows of at most 3 panels and marks
a missing measure "n/a"; the solver's simplex names its classes and every plotted stage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analysis.correction_plots import MAX_COLUMNS, correction_figure
from analysis.selection import DatasetResults, eta_key
from analysis.settings import Setting
from utils.stages import Stage

SHOW = os.environ.get("SELFDISTILL_FIGURES")  # a folder: the test's figures are saved there, to be looked at


def results(dataset: str, etas, missing=()) -> DatasetResults:
    stages = [Stage.teacher(), Stage.student(1), Stage.pll(), Stage("gce"), Stage("cl")]
    accuracy = {(stage, eta_key(eta)): {0: 80.0, 1: 81.0} for stage in stages for eta in etas}
    measures = {
        name: {
            (stage, eta_key(eta)): {0: base + 5 * k, 1: base + 5 * k + 1}
            for k, stage in enumerate(stages)
            for eta in etas
            if (stage.name, eta) not in missing
        }
        for name, base in (("corrected", 40.0), ("kept", 80.0))
    }
    return DatasetResults(dataset, Setting((), "x"), accuracy, measures=measures)


def test_the_correction_figure_wraps_into_at_most_three_columns_and_marks_missing_cells(tmp_path):
    datasets = [results("digits", (0.3, 0.5, 0.7, 0.8)), results("synthetic", (0.5,), missing={("cl", 0.5)})]
    figure = correction_figure(datasets, [0.3, 0.5, 0.7, 0.8])
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 5
    width, height = figure.get_size_inches()
    assert width <= 3 * 3.0 + 1.0 + 1e-9 and height >= 2 * 2.7 - 1e-9  # 2 rows of at most 3 panels
    columns = {round(axes.get_position().x0, 3) for axes in visible}
    assert len(columns) <= MAX_COLUMNS
    last = visible[-1]
    assert last.get_title() == "synthetic, η = 0.5"
    assert sum(text.get_text() == "n/a" for text in last.texts) == 2  # corrected and kept of cl
    assert not any(text.get_text() == "n/a" for axes in visible[:-1] for text in axes.texts)
    heights = [patch.get_height() for patch in last.patches]
    assert sum(np.isnan(heights)) == 2, "missing cells are not drawn as bars of height zero"
    if SHOW:
        figure.savefig(Path(SHOW) / "correction.png", dpi=100)


def test_the_solvers_figures_name_every_class_and_stage_and_the_non_default_settings(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from gram_theory import plots
    from gram_theory.config import Config
    from numerical_solving import settings_caption

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: drawn.append(figure))
    rng = np.random.default_rng(0)
    rounds, k = 9, 4
    outputs = rng.dirichlet(np.ones(k), size=(rounds + 1, 40))
    labels = np.arange(40) % k
    caption = settings_caption(Config(n=10, gram="reference", wd=(1e-3,)))
    assert caption == "n=10, gram=reference"  # wd is in the title already
    point = SimpleNamespace(outputs=outputs, eta=0.5, lbd=1e-3, accuracy=rng.uniform(0, 100, (rounds + 1, 3)))
    plots.simplex(point, labels, tmp_path / "s.png", caption=caption)
    plots.accuracy_vs_eta([point, SimpleNamespace(**{**vars(point), "eta": 0.7})], tmp_path / "a.png", caption)
    simplex, accuracy = drawn
    assert [t.get_text() for t in simplex.legends[0].get_texts()] == [f"class {j}" for j in range(k)]
    assert all(sum(t.get_text() == f"class {j}" for t in simplex.axes[0].texts) == 1 for j in range(k))
    assert caption in simplex._suptitle.get_text()
    legend = [t.get_text() for t in accuracy.axes[0].get_legend().get_texts()]
    assert legend == ["teacher", *(f"student {t}" for t in range(1, rounds))]
    assert caption in accuracy.axes[0].get_title()
    if SHOW:
        simplex.savefig(Path(SHOW) / "solver-simplex.png", dpi=100)
        accuracy.savefig(Path(SHOW) / "solver-accuracy.png", dpi=100)


def test_report_figures_name_a_non_default_setting_in_their_titles(tmp_path):
    from analysis.report_outputs import ReportConfig, build_reports
    from analysis.selection import Filters
    from tests.test_report import toy_store
    from training.store import RunStore

    store = toy_store(tmp_path / "ck", seeding="independent")
    (report,) = build_reports(ReportConfig(store=store, filters=Filters(datasets=("toy",))), RunStore(store).records())
    titles = [axes.get_title() for axes in report.figure.axes if axes.get_visible()]
    assert titles and all("seeding independent" in title for title in titles), titles
    if SHOW:
        report.figure.savefig(Path(SHOW) / "gain.png", dpi=100)
