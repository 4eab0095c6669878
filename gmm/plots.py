"""Figures of test error against α: theory curves, simulation points with error bars, R* per α.

Each function returns a matplotlib ``Figure`` (not pyplot: no global figure state, no display);
the caller saves it, so that a figure's PNG and PDF are written with the JSON document, together.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gmm.report import people
from utils.stages import Stage

LINESTYLE = {"hard": "-", "soft": "--"}


def _order(name: str) -> tuple:
    """Models in chain order (teacher, student 1, …), other names (``early-stopped``) after them."""
    try:
        return (0, Stage.parse(name).sort_key)
    except ValueError:
        return (1, name)


def _series(rows: Sequence[dict], key: str):
    """{(labels, key value): sorted [(α, row)]}: one curve per label type and model."""
    curves = defaultdict(list)
    for row in rows:
        curves[(row["labels"], row[key])].append((row["alpha"], row))
    ordered = sorted(curves.items(), key=lambda item: (item[0][0], _order(str(item[0][1]))))
    return {name: sorted(points, key=lambda p: p[0]) for name, points in ordered}


def plot_theory(rows: Sequence[dict]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for (labels, name), points in _series(rows, "model").items():
        alphas = [a for a, _ in points]
        axes.plot(
            alphas,
            [r["error"] for _, r in points],
            LINESTYLE.get(labels, "-"),
            marker=".",
            label=f"{people(name)} ({labels})",
        )
    _finish(axes, "RS theory")
    return figure


def plot_simulation(rows: Sequence[dict]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for (labels, name), points in _series(rows, "model").items():
        alphas = [a for a, _ in points]
        line = axes.errorbar(
            alphas,
            [r["error"] for _, r in points],
            yerr=[r["standard_error"] for _, r in points],
            fmt="o",
            ms=4,
            capsize=3,
            label=f"{people(name)} ({labels}), simulation",
        )
        if all("theory" in r for _, r in points):
            axes.plot(
                alphas,
                [r["theory"] for _, r in points],
                LINESTYLE.get(labels, "-"),
                color=line[0].get_color(),
                label=f"{people(name)} ({labels}), theory",
            )
    _finish(axes, f"simulation, N = {rows[0]['N']}" if rows else "simulation")
    return figure


def plot_tuning(rows: Sequence[dict], best_rows: Sequence[dict]) -> Figure:
    """Left: tuned error vs α of the teacher, student 1 and the early-stopped chain; right: R* vs α.

    Legends give the GMM paper's names (0-SD, 1-SD, R*-SD) beside the project's: this figure
    reproduces the paper's.
    """
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    colours = {}
    for (labels, rounds), points in _series(rows, "rounds").items():
        if rounds > 1:
            continue
        alphas = [a for a, _ in points]
        key = "teacher (0-SD)" if rounds == 0 else f"student 1 (1-SD {labels})"
        if rounds == 0 and key in colours:
            continue  # the teacher does not depend on the label type
        line = left.plot(
            alphas,
            [r["error"] for _, r in points],
            LINESTYLE.get(labels, "-") if rounds else ":",
            label=f"{key}, theory",
        )[0]
        colours[key] = line.get_color()
        _simulation_points(left, points, line.get_color(), key)
    chosen = {(row["labels"], row["alpha"], row["rounds"]): row for row in rows}
    for (labels, _), points in _series(best_rows, "labels").items():
        alphas = [a for a, _ in points]
        picked = [chosen[(labels, a, r["best_rounds"])] for a, r in points]
        name = f"early-stopped (R*-SD {labels})"
        line = left.plot(
            alphas, [r["error"] for r in picked], LINESTYLE.get(labels, "-"), lw=2.5, alpha=0.6, label=f"{name}, theory"
        )[0]
        _simulation_points(left, list(zip(alphas, picked)), line.get_color(), name)
        right.step(
            alphas,
            [r["best_rounds"] for _, r in points],
            where="mid",
            marker="o",
            linestyle=LINESTYLE.get(labels, "-"),
            label=labels,
        )
    _finish(left, "tuned per model (theory curves, simulation points ± 1 SE)")
    right.set_xlabel("α = M/N")
    right.set_ylabel("optimal number of rounds R* (students)")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend()
    right.grid(alpha=0.3)
    return figure


def _simulation_points(axes, points, colour, name) -> None:
    with_sim = [(a, r) for a, r in points if "simulation_error" in r]
    if with_sim:
        axes.errorbar(
            [a for a, _ in with_sim],
            [r["simulation_error"] for _, r in with_sim],
            yerr=[r["simulation_standard_error"] for _, r in with_sim],
            fmt="o",
            ms=4,
            capsize=3,
            color=colour,
            label=f"{name}, N = {with_sim[0][1]['N']}",
        )


def plot_real(rows: Sequence[dict]) -> Figure:
    figure = Figure(figsize=(5.5, 4))
    axes = figure.subplots()
    names = [people(row["model"]) + (f"\n({row['labels']})" if row.get("labels") else "") for row in rows]
    axes.bar(names, [row["error"] for row in rows], yerr=[row["standard_error"] for row in rows], capsize=4)
    axes.set_ylabel("test error")
    axes.set_title(rows[0]["data"] if rows else "")
    axes.grid(alpha=0.3, axis="y")
    return figure


def _finish(axes, title: str) -> None:
    axes.set_xlabel("α = M/N")
    axes.set_ylabel("test error ε")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
