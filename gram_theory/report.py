"""Plain-text tables of a run: per-round results of one point, and accuracy over a sweep."""

from __future__ import annotations

import numpy as np

from gram_theory.experiment import PointResult


def round_name(t: int) -> str:
    """Row label: round 0 holds the given labels, round 1 is the teacher, later rounds students."""
    return {0: "0 given", 1: "1 teacher"}.get(t, f"{t} student")


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f}±{std:.3f}"


def point_table(point: PointResult) -> str:
    """Accuracy, residual, time and iterations per round, then the softmax values (Figure 3b)."""
    lines = [f"eta = {point.eta:g}, lbd = {point.lbd:g}",
             f"{'round':<11}{'clean %':>8}{'noisy %':>8}{'all %':>8}{'residual':>11}{'time s':>8}"
             f"{'iters':>8}  converged"]
    for t in range(point.outputs.shape[0]):
        clean, noisy, total = point.accuracy[t]
        converged = "-" if t == 0 else ("yes" if point.converged[t] else "no")
        lines.append(f"{round_name(t):<11}{clean:>8.2f}{noisy:>8.2f}{total:>8.2f}{point.residual[t]:>11.2e}"
                     f"{point.seconds[t]:>8.3f}{point.iterations[t]:>8d}  {converged}")
    lines.append("")
    lines.append(f"{'softmax':<11}{'clean: true':>14}{'other':>14} |{'noisy: true':>14}{'given':>14}{'other':>14}")
    for t in range(point.outputs.shape[0]):
        s = point.softmax[t]
        lines.append(f"{round_name(t):<11}{_pm(*s[0, 0]):>14}{_pm(*s[0, 2]):>14} |"
                     f"{_pm(*s[1, 0]):>14}{_pm(*s[1, 1]):>14}{_pm(*s[1, 2]):>14}")
    return "\n".join(lines)


def undetermined_note(points: list[PointResult]) -> str:
    """A warning line per point where some samples' argmax is below the solve's resolution, or ''."""
    lines = []
    for p in points:
        rounds = np.flatnonzero(p.undetermined)
        if rounds.size:
            lines.append(f"note: eta = {p.eta:g}, lbd = {p.lbd:g}: up to {p.undetermined.max()} samples have "
                         f"their two largest outputs within tol (rounds {rounds.min()}-{rounds.max()}); "
                         "their argmax, and so the accuracy, reflects rounding")
    return "\n".join(lines)


def sweep_table(points: list[PointResult]) -> str:
    """Accuracy (%, all samples): rows are rounds, columns the eta values of one lambda."""
    header = f"{'round':<11}" + "".join(f"{'eta=' + format(p.eta, 'g'):>10}" for p in points)
    lines = [f"accuracy % (all samples), lbd = {points[0].lbd:g}", header]
    for t in range(points[0].outputs.shape[0]):
        lines.append(f"{round_name(t):<11}" + "".join(f"{p.accuracy[t, 2]:>10.2f}" for p in points))
    return "\n".join(lines)
