"""Figures of test error against α: theory curves, simulation points with error bars, T* per α."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure  # not pyplot: no global figure state, no display needed
from matplotlib.ticker import MaxNLocator

from utils.atomic import atomic_path

LINESTYLE = {"hard": "-", "soft": "--"}


def _save(figure, path: str | os.PathLike) -> None:
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as temp:
        figure.savefig(temp, format=fmt, dpi=130, bbox_inches="tight")


def _series(rows: Sequence[dict], key: str, value: str = "error"):
    """{(labels, key value): sorted [(α, row)]} — one curve per label type and stage."""
    curves = defaultdict(list)
    for row in rows:
        curves[(row["labels"], row[key])].append((row["alpha"], row))
    return {name: sorted(points, key=lambda p: p[0]) for name, points in sorted(curves.items(), key=str)}


def _stage_name(stages) -> str:
    return f"{int(stages) - 1}-SD" if str(stages).isdigit() else str(stages)


def plot_theory(rows: Sequence[dict], path: str | os.PathLike) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for (labels, stage), points in _series(rows, "stage").items():
        alphas = [a for a, _ in points]
        axes.plot(alphas, [r["error"] for _, r in points], LINESTYLE.get(labels, "-"), marker=".",
                  label=f"{_stage_name(stage)} ({labels})")
    _finish(axes, "RS theory")
    _save(figure, path)


def plot_simulation(rows: Sequence[dict], path: str | os.PathLike) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for (labels, stage), points in _series(rows, "stage").items():
        alphas = [a for a, _ in points]
        line = axes.errorbar(alphas, [r["error"] for _, r in points], yerr=[r["standard_error"] for _, r in points],
                             fmt="o", ms=4, capsize=3, label=f"{_stage_name(stage)} ({labels}), simulation")
        if all("theory" in r for _, r in points):
            axes.plot(alphas, [r["theory"] for _, r in points], LINESTYLE.get(labels, "-"),
                      color=line[0].get_color(), label=f"{_stage_name(stage)} ({labels}), theory")
    _finish(axes, f"simulation, N = {rows[0]['N']}" if rows else "simulation")
    _save(figure, path)


def plot_tuning(rows: Sequence[dict], best_rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Left: tuned error vs α for 0-SD, 1-SD and the early-stopped T*-SD; right: T* vs α."""
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    curves = _series(rows, "stages")
    colours = {}
    for (labels, stages), points in curves.items():
        if stages > 2:
            continue
        alphas = [a for a, _ in points]
        key = "0-SD" if stages == 1 else f"1-SD {labels}"
        if stages == 1 and key in colours:
            continue  # the teacher does not depend on the label type
        line = left.plot(alphas, [r["error"] for _, r in points], LINESTYLE.get(labels, "-") if stages > 1 else ":",
                         label=f"{key}, theory")[0]
        colours[key] = line.get_color()
        _simulation_points(left, points, line.get_color(), key)
    best = _series(best_rows, "labels")
    for (labels, _), points in best.items():
        chosen = {(row["labels"], row["alpha"], row["stages"]): row for row in rows}
        alphas = [a for a, _ in points]
        picked = [chosen[(labels, a, r["best_stages"])] for a, r in points]
        line = left.plot(alphas, [r["error"] for r in picked], LINESTYLE.get(labels, "-"), lw=2.5, alpha=0.6,
                         label=f"T*-SD {labels} (early-stopped), theory")[0]
        _simulation_points(left, list(zip(alphas, picked)), line.get_color(), f"T*-SD {labels}")
        right.step(alphas, [r["best_stages"] - 1 for _, r in points], where="mid", marker="o",
                   linestyle=LINESTYLE.get(labels, "-"), label=labels)
    _finish(left, "tuned per stage (theory curves, simulation points ± 1 SE)")
    right.set_xlabel("α = M/N")
    right.set_ylabel("optimal number of SD rounds (T* − 1)")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend()
    right.grid(alpha=0.3)
    _save(figure, path)


def _simulation_points(axes, points, colour, name) -> None:
    with_sim = [(a, r) for a, r in points if "simulation_error" in r]
    if with_sim:
        axes.errorbar([a for a, _ in with_sim], [r["simulation_error"] for _, r in with_sim],
                      yerr=[r["simulation_standard_error"] for _, r in with_sim], fmt="o", ms=4, capsize=3,
                      color=colour, label=f"{name}, N = {with_sim[0][1]['N']}")


def plot_real(rows: Sequence[dict], path: str | os.PathLike) -> None:
    figure = Figure(figsize=(5, 4))
    axes = figure.subplots()
    names = [row["model"] for row in rows]
    axes.bar(names, [row["error"] for row in rows], yerr=[row["standard_error"] for row in rows], capsize=4)
    axes.set_ylabel("test error")
    axes.set_title(rows[0]["data"] if rows else "")
    axes.grid(alpha=0.3, axis="y")
    _save(figure, path)


def _finish(axes, title: str) -> None:
    axes.set_xlabel("α = M/N")
    axes.set_ylabel("test error ε")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
