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


def accuracy_vs_eta(points: list[PointResult], path: Path) -> None:
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
            label=stage_name(t) if t in (1, 2, rounds) else None,
        )
    ax.set_xlabel("label corruption rate eta (--corruption)")
    ax.set_ylabel("training accuracy vs true class (%)")
    ax.set_title(f"accuracy per stage, wd = {points[0].lbd:g}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def label_averaging_spectrum(spectrum: Spectrum, point: PointResult, path: Path) -> None:
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
    _save(fig, path)


def simplex(point: PointResult, labels: np.ndarray, path: Path) -> None:
    """Outputs of the teacher, a middle student and the last student on the probability simplex.

    Each class is a vertex of a regular K-gon and a sample sits at sum_k Y_ik v_k; colours are
    true classes (the paper's Figure 2b).
    """
    rounds, k = point.outputs.shape[0] - 1, point.outputs.shape[2]
    shown = sorted({1, max(1, (rounds + 1) // 2), rounds})
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
    vertices = np.column_stack([np.cos(angles), np.sin(angles)])
    fig = Figure(figsize=(4 * len(shown), 4))
    axes = fig.subplots(1, len(shown), squeeze=False)
    for ax, t in zip(axes[0], shown, strict=True):
        xy = point.outputs[t] @ vertices
        ax.fill(vertices[:, 0], vertices[:, 1], fill=False, lw=0.8)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=4, alpha=0.6)
        ax.set_title(stage_name(t))
        ax.set_aspect("equal")
        ax.axis("off")
    fig.suptitle(f"softmax outputs coloured by true class, corruption = {point.eta:g}, wd = {point.lbd:g}")
    _save(fig, path)
