"""Figures of a run: accuracy vs corruption per round, the label-averaging spectrum, simplex outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gram_theory.approx import shrink_factors
from gram_theory.experiment import PointResult
from gram_theory.report import stage_name
from gram_theory.spectrum import Spectrum


def _save(fig: Figure, path: Path) -> None:
    """Render with the Agg canvas (no pyplot, no global state) to ``path``, a temporary file of the
    run's file group (``gram_theory.storage.save``)."""
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")


def _colours(count: int) -> np.ndarray:
    return colormaps["viridis"](np.linspace(0, 1, max(count, 1)))


def _titled(title: str, caption: str) -> str:
    """A title with the run's non-default settings (``caption``) on a second line, so a figure says how
    it was made without its file name."""
    return f"{title}\n{caption}" if caption else title


def accuracy_vs_eta(points: list[PointResult], path: Path, caption: str = "") -> None:
    """Accuracy (%, all training samples) against eta, one line per stage (the paper's Figure 3a)."""
    etas = np.array([p.eta for p in points])
    rounds = points[0].outputs.shape[0] - 1
    colours = _colours(rounds)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for t in range(1, rounds + 1):
        ax.plot(
            etas,
            [p.accuracy[t, 2] for p in points],
            marker="o",
            ms=3,
            color=colours[t - 1],
            label=stage_name(t),  # every plotted stage in the legend
        )
    ax.set_xlabel("label corruption rate eta (--corruption)")
    ax.set_ylabel("training accuracy vs true class (%)")
    ax.set_title(_titled(f"accuracy per stage, wd = {points[0].lbd:g}", caption), fontsize=10)
    ax.legend(fontsize=7, ncols=2 if rounds > 5 else 1)
    ax.grid(alpha=0.3)
    _save(fig, path)


def label_averaging_spectrum(spectrum: Spectrum, point: PointResult, path: Path, caption: str = "") -> None:
    """Left: shrink factors (mu_j / (mu_j + K N lbd))^t per eigenvector; right: the energy
    |u_j^T (Y_t - 1/K)|^2 of the centred outputs along each eigenvector, eigenvalues descending."""
    rounds, n_samples, k = point.outputs.shape[0] - 1, point.outputs.shape[1], point.outputs.shape[2]
    order = np.argsort(spectrum.values)[::-1]
    values = spectrum.values[order]
    vectors = spectrum.vectors[:, order]
    shrink = np.abs(shrink_factors(values, k, n_samples, point.lbd))
    colours = _colours(rounds + 1)
    index = np.arange(1, values.size + 1)
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for t in range(rounds + 1):
        label = stage_name(t) if t in (0, 1, rounds) else None
        if t > 0:
            left.loglog(index, shrink**t, color=colours[t], label=label)
        energy = np.sum((vectors.T @ (point.outputs[t] - 1.0 / k)) ** 2, axis=1)
        right.loglog(index, np.maximum(energy, 1e-30), color=colours[t], lw=0.8, label=label)
    left.set_title(f"shrink factor (mu_j / (mu_j + K N lambda))^t, wd = {point.lbd:g}")
    right.set_title(f"energy of Y_t - 1/K along u_j, eta = {point.eta:g}")
    for ax in (left, right):
        ax.set_xlabel("eigenvector j (eigenvalue descending)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if caption:
        fig.suptitle(caption, fontsize=9)
    _save(fig, path)


def simplex(point: PointResult, labels: np.ndarray, path: Path, caption: str = "") -> None:
    """Outputs of the teacher, a middle student and the last student on the probability simplex.

    Each class is a vertex of a regular K-gon (labelled) and a sample sits at sum_k Y_ik v_k; colours
    are true classes, named in a legend (the paper's Figure 2b).
    """
    rounds, k = point.outputs.shape[0] - 1, point.outputs.shape[2]
    shown = sorted({1, max(1, (rounds + 1) // 2), rounds})
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
    vertices = np.column_stack([np.cos(angles), np.sin(angles)])
    colours = colormaps["tab10"](np.arange(k) % 10)
    fig = Figure(figsize=(3.4 * len(shown) + 1.2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)
    for ax, t in zip(axes[0], shown, strict=True):
        xy = point.outputs[t] @ vertices
        ax.fill(vertices[:, 0], vertices[:, 1], fill=False, lw=0.8)
        for j in range(k):
            members = labels == j
            ax.scatter(xy[members, 0], xy[members, 1], color=colours[j], s=4, alpha=0.6, label=f"class {j}")
            x, y = vertices[j]
            side = "left" if x > 0.1 else "right" if x < -0.1 else "center"
            ax.annotate(f"class {j}", (1.08 * x, 1.1 * y), ha=side, va="center", fontsize=8)
        ax.set_title(stage_name(t), fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.35, 1.35)
        ax.axis("off")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, title="true class", loc="outside right center", frameon=False, markerscale=3, fontsize=8)
    fig.suptitle(
        _titled(f"softmax outputs coloured by true class, corruption = {point.eta:g}, wd = {point.lbd:g}", caption),
        fontsize=10,
    )
    _save(fig, path)
