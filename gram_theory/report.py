"""Plain-text tables of a run: per-round results of one point, and accuracy over a sweep.

Rows speak the project's stage vocabulary (``utils.stages``): ``outputs[0]`` is the given labels,
``outputs[1]`` the teacher, ``outputs[t]`` student t - 1.
"""

from __future__ import annotations

import numpy as np

from gram_theory.experiment import PointResult
from utils.stages import Stage

_WIDTH = 14


def stage_name(t: int) -> str:
    """Row label of ``outputs[t]``: the given labels, the teacher, then student 1, 2, ..."""
    return "given labels" if t == 0 else Stage.from_solver_round(t).label


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f}±{std:.3f}"


def point_table(point: PointResult) -> str:
    """Accuracy, residual, time and iterations per round, then the softmax values (Figure 3b)."""
    lines = [
        f"corruption = {point.eta:g}, wd = {point.lbd:g}",
        f"{'stage':<{_WIDTH}}{'clean %':>8}{'noisy %':>8}{'all %':>8}{'residual':>11}{'time s':>8}"
        f"{'iters':>8}  converged",
    ]
    for t in range(point.outputs.shape[0]):
        clean, noisy, total = point.accuracy[t]
        converged = "-" if t == 0 else ("yes" if point.converged[t] else "no")
        lines.append(
            f"{stage_name(t):<{_WIDTH}}{clean:>8.2f}{noisy:>8.2f}{total:>8.2f}{point.residual[t]:>11.2e}"
            f"{point.seconds[t]:>8.3f}{point.iterations[t]:>8d}  {converged}"
        )
    lines.append("")
    lines.append(
        f"{'softmax':<{_WIDTH}}{'clean: true':>14}{'other':>14} |{'noisy: true':>14}{'given':>14}{'other':>14}"
    )
    for t in range(point.outputs.shape[0]):
        s = point.softmax[t]
        lines.append(
            f"{stage_name(t):<{_WIDTH}}{_pm(*s[0, 0]):>14}{_pm(*s[0, 2]):>14} |"
            f"{_pm(*s[1, 0]):>14}{_pm(*s[1, 1]):>14}{_pm(*s[1, 2]):>14}"
        )
    return "\n".join(lines)


def undetermined_note(points: list[PointResult]) -> str:
    """A warning line per point where some samples' argmax is below the solve's resolution, or ''."""
    lines = []
    for p in points:
        rounds = np.flatnonzero(p.undetermined)
        if rounds.size:
            lines.append(
                f"note: corruption = {p.eta:g}, wd = {p.lbd:g}: up to {p.undetermined.max()} samples "
                f"have their two largest outputs within tol ({stage_name(rounds.min())} to "
                f"{stage_name(rounds.max())}); "
                "their argmax, and so the accuracy, reflects rounding"
            )
    return "\n".join(lines)


def sweep_table(points: list[PointResult]) -> str:
    """Accuracy (%, all samples): rows are stages, columns the corruption rates of one wd."""
    header = f"{'stage':<{_WIDTH}}" + "".join(f"{'eta=' + format(p.eta, 'g'):>10}" for p in points)
    lines = [f"accuracy % (all samples) by corruption rate eta, wd = {points[0].lbd:g}", header]
    for t in range(points[0].outputs.shape[0]):
        lines.append(f"{stage_name(t):<{_WIDTH}}" + "".join(f"{p.accuracy[t, 2]:>10.2f}" for p in points))
    return "\n".join(lines)
