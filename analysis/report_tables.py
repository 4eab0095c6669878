"""Appendix G.3 tables and distillation gains: mean ± std (ddof 0) over seeds, as Markdown and LaTeX.

Accuracy tables have rows teacher, students and PLL (utils.stages), with the paper's Appendix G.3
row number beside each ("teacher (1)", "student 1 (2)", …: student t is G.3 row t+1), and one
column per η; the best mean per
column is bold. A gain is student − teacher of the same seed; a seed missing either side is left
out. A cell without runs is shown as missing ("—"), never as zero, and a cell over fewer seeds
than the dataset's others says how many it holds.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from analysis.selection import DatasetResults, eta_key
from utils.escaping import latex, markdown_cell
from utils.stages import Stage

MISSING = "—"
DECIMALS = 2
TABLE_ROUNDS = 4  # the paper's tables: the teacher, four students, PLL
GAIN_STAGES: tuple[Stage, ...] = (*(Stage.student(t) for t in range(1, TABLE_ROUNDS + 1)), Stage.pll())


@dataclasses.dataclass(frozen=True)
class Cell:
    mean: float
    std: float  # population standard deviation (ddof 0), as the paper's tables
    n: int


Cells = dict[tuple[Stage, float], Cell | None]  # (stage, η) → summary; None where there is no run


def summarise(values: Iterable[float]) -> Cell | None:
    """Mean ± std (ddof 0) of ``values``; ``None`` when there are none."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return None
    return Cell(float(array.mean()), float(array.std(ddof=0)), int(array.size))


def seed_gains(results: DatasetResults, stage: Stage, eta: float) -> list[float]:
    """Student − teacher accuracy for every seed that has both, in seed order."""
    teacher = results.accuracy.get((Stage.teacher(), eta_key(eta)), {})
    student = results.accuracy.get((stage, eta_key(eta)), {})
    return [student[seed] - teacher[seed] for seed in sorted(teacher.keys() & student.keys())]


def gain_cells(results: DatasetResults, stages: Sequence[Stage], etas: Sequence[float]) -> Cells:
    return {(stage, eta): summarise(seed_gains(results, stage, eta)) for stage in stages for eta in etas}


def accuracy_cells(results: DatasetResults, stages: Sequence[Stage], etas: Sequence[float]) -> Cells:
    return {
        (stage, eta): summarise(results.accuracy.get((stage, eta_key(eta)), {}).values())
        for stage in stages
        for eta in etas
    }


def table_stages(results: DatasetResults) -> list[Stage]:
    """The teacher, students 1..max(4, the last round present), and PLL."""
    return [*(Stage.from_round(t) for t in range(max(TABLE_ROUNDS, results.rounds) + 1)), Stage.pll()]


def g3_label(stage: Stage) -> str:
    """A row of the accuracy table: the stage's name, with its Appendix G.3 row number (student t is row t+1)."""
    return stage.label if stage.is_pll else f"{stage.label} ({stage.round + 1})"


def best_per_column(cells: Cells) -> set[tuple[Stage, float]]:
    """The cells with the highest mean in their column; ties at the printed precision are all best."""
    best: set[tuple[Stage, float]] = set()
    for eta in {eta for _, eta in cells}:
        column = {key: round(cell.mean, DECIMALS) for key, cell in cells.items() if key[1] == eta and cell}
        if column:
            top = max(column.values())
            best |= {key for key, mean in column.items() if mean == top}
    return best


@dataclasses.dataclass(frozen=True)
class Table:
    """A table before rendering: one row per stage, one column per η."""

    title: str
    note: str
    row_header: str
    stages: tuple[Stage, ...]
    etas: tuple[float, ...]
    cells: Cells
    labels: dict[Stage, str]
    bold: frozenset[tuple[Stage, float]]
    seeds: int  # a cell over fewer seeds says so
    signed: bool = False


def accuracy_table(results: DatasetResults, etas: Sequence[float], metric_name: str) -> Table:
    stages = table_stages(results)
    cells = accuracy_cells(results, stages, etas)
    return Table(
        title=f"{results.dataset}: {metric_name} (%)",
        note=f"Mean ± std (ddof 0) over seeds {', '.join(map(str, results.seeds))}; best per column in bold",
        row_header="Stage (G.3 row)",
        stages=tuple(stages),
        etas=tuple(etas),
        cells=cells,
        labels={stage: g3_label(stage) for stage in stages},
        bold=frozenset(best_per_column(cells)),
        seeds=len(results.seeds),
    )


def gain_table(results: DatasetResults, etas: Sequence[float], metric_name: str) -> Table:
    cells = gain_cells(results, GAIN_STAGES, etas)
    return Table(
        title=f"{results.dataset}: distillation gain in {metric_name} (points)",
        note="Student − teacher of the same seed, mean ± std (ddof 0) over seeds",
        row_header="Stage",
        stages=GAIN_STAGES,
        etas=tuple(etas),
        cells=cells,
        labels={stage: stage.label for stage in GAIN_STAGES},
        bold=frozenset(),
        seeds=len(results.seeds),
        signed=True,
    )


def method_stages(results: DatasetResults) -> list[Stage]:
    """Every stage present: the teacher first, then students, PLL and the baselines, in the one stage order."""
    present = {stage for stage, _ in results.accuracy}
    return [Stage.teacher(), *sorted(present - {Stage.teacher()}, key=lambda stage: stage.sort_key)]


def _column_values(results: DatasetResults, stage: Stage, eta: float) -> dict[int, float]:
    """Seed → accuracy of a stage at η; a head that does not depend on η (clean labels) fills every column."""
    return results.accuracy.get((stage, eta_key(stage.method.run_eta(eta))), {})


def within_paired_error(
    results: DatasetResults, stages: Sequence[Stage], etas: Sequence[float]
) -> set[tuple[Stage, float]]:
    """Per column: the best mean, and every method within one paired standard error of it (the standard
    error of the per-seed differences to the best, ddof 1; with fewer than two common seeds, ties only).
    The oracles (clean labels, forward correction with the true matrix) are not ranked."""
    bold: set[tuple[Stage, float]] = set()
    for eta in etas:
        values = {stage: _column_values(results, stage, eta) for stage in stages if not stage.method.oracle}
        means = {stage: float(np.mean(list(v.values()))) for stage, v in values.items() if v}
        if not means:
            continue
        best = max(means, key=means.get)
        for stage, mean in means.items():
            seeds = sorted(values[stage].keys() & values[best].keys())
            differences = np.array([values[best][s] - values[stage][s] for s in seeds])
            error = float(differences.std(ddof=1) / np.sqrt(len(seeds))) if len(seeds) >= 2 else 0.0
            if round(means[best] - mean, DECIMALS) <= round(error, DECIMALS):
                bold.add((stage, eta))
    return bold


def _unranked(stages: Sequence[Stage]) -> str:
    """What the methods table's note says about the oracles and the heads trained once per seed, if present."""
    oracles = [stage.label for stage in stages if stage.method.oracle]
    once = [stage.label for stage in stages if not stage.method.depends_on_eta]
    text = f", oracles ({', '.join(oracles)}) not ranked" if oracles else ""
    return text + (f"; trained once per seed, {', '.join(once)} fill every column" if once else "")


def methods_table(results: DatasetResults, etas: Sequence[float], metric_name: str) -> Table:
    """Every method side by side: the teacher first, then students, PLL and the baselines."""
    stages = method_stages(results)
    cells = {(stage, eta): summarise(_column_values(results, stage, eta).values()) for stage in stages for eta in etas}
    return Table(
        title=f"{results.dataset}: {metric_name} of every method (%)",
        note=f"Mean ± std (ddof 0) over seeds {', '.join(map(str, results.seeds))}; in bold the best mean and "
        f"every method within one paired standard error of it{_unranked(stages)}",
        row_header="Method",
        stages=tuple(stages),
        etas=tuple(etas),
        cells=cells,
        labels={stage: stage.label for stage in stages},
        bold=frozenset(within_paired_error(results, stages, etas)),
        seeds=len(results.seeds),
    )


def describe_setting(results: DatasetResults) -> str:
    return results.setting.describe() + (f" ({results.others})" if results.others else "")


def _number(value: float, signed: bool) -> str:
    return f"{value:+.{DECIMALS}f}" if signed else f"{value:.{DECIMALS}f}"


def _cell_text(table: Table, key: tuple[Stage, float], plus_minus: str, count: str) -> str | None:
    cell = table.cells[key]
    if cell is None:
        return None
    text = f"{_number(cell.mean, table.signed)}{plus_minus}{cell.std:.{DECIMALS}f}"
    return text + (count.format(n=cell.n) if cell.n < table.seeds else "")


def _legend(table: Table, missing: str, count: str) -> str:
    """What the marks in this table mean: a missing cell, and a cell over fewer seeds than the others."""
    cells = table.cells.values()
    marks = [f"{missing}: no runs"] if None in cells else []
    marks += [f"{count}: over k seeds only"] if any(c and c.n < table.seeds for c in cells) else []
    return "".join(f"; {mark}" for mark in marks)


def to_markdown(table: Table, setting: str) -> str:
    header = [table.row_header, *(f"η = {eta:g}" for eta in table.etas)]
    lines = [
        f"### {markdown_cell(table.title)}",
        "",
        markdown_cell(f"{table.note}{_legend(table, MISSING, '(n=k)')}. Setting: {setting}."),
        "",
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * len(table.etas),
    ]
    for stage in table.stages:
        row = [markdown_cell(table.labels[stage])]
        for eta in table.etas:
            text = _cell_text(table, (stage, eta), " ± ", " (n={n})")
            row.append(MISSING if text is None else f"**{text}**" if (stage, eta) in table.bold else text)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def to_latex(table: Table, setting: str, label: str) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    caption = latex(f"{table.title}. {table.note}{_legend(table, '--', '(n = k)')}. Setting: {setting}.")
    caption = caption.replace("±", r"$\pm$")
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{l" + "c" * len(table.etas) + "}",
        r"\toprule",
        " & ".join([table.row_header, *(rf"$\eta = {eta:g}$" for eta in table.etas)]) + r" \\",
        r"\midrule",
    ]
    for stage in table.stages:
        row = [latex(table.labels[stage])]
        for eta in table.etas:
            text = _cell_text(table, (stage, eta), r" $\pm$ ", r" ($n = {n}$)")
            row.append("--" if text is None else rf"\textbf{{{text}}}" if (stage, eta) in table.bold else text)
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)
