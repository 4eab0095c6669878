"""The whole chain (teacher, R students, PLL, and any baselines) for every seed and noise rate, and its table."""

from __future__ import annotations

import dataclasses

import numpy as np

from training.config import TrainConfig
from training.stages import DeviceData, StageContext, StageRun, run_stage
from training.store import Lookup, RunStore
from utils.progress import Steps
from utils.stages import Stage, stage_order


def chain_stages(rounds: int, pll: bool = True, baselines: list[str] = ()) -> list[Stage]:
    return (
        [Stage.from_round(t) for t in range(rounds + 1)]
        + ([Stage.pll()] if pll else [])
        + [Stage(name) for name in baselines]
    )


def configs_for(base: TrainConfig, stage: Stage, seeds: list[int], rates: list[float]) -> list[TrainConfig]:
    """One run per (η, seed); a method that does not depend on η (clean labels): one run per seed, at η = 0."""
    rates = list(dict.fromkeys(stage.method.run_eta(eta) for eta in rates))
    return [dataclasses.replace(base, seed=s, corruption=eta, stage=stage) for eta in rates for s in seeds]


def run_chain(
    base: TrainConfig, seeds: list[int], rates: list[float], stages: list[Stage], data: DeviceData, ctx: StageContext
) -> list[StageRun]:
    """Every stage in order, each stage's heads stacked; later stages read the runs the earlier ones published."""
    finished: list[StageRun] = []
    with Steps(len(stages), "stages") as steps:
        for stage in stages:
            runs = run_stage(configs_for(base, stage, seeds, rates), data, ctx)
            finished += runs
            reused = sum(run.reused for run in runs)
            steps.done(f"{stage.label}: {len(runs) - reused} trained, {reused} reused")
    return finished


def chain_plan(
    base: TrainConfig, seeds: list[int], rates: list[float], stages: list[Stage], store: RunStore
) -> list[tuple[TrainConfig, Lookup]]:
    """Every run of the chain with what the store holds for it; writes nothing."""
    return [(config, store.find(config)) for stage in stages for config in configs_for(base, stage, seeds, rates)]


def chain_table(records, metric: str = "test_acc", exact: bool = False) -> str:
    """Rows: stages in order; columns: η with the realised rate; cells: mean ± std (ddof 0) over seeds, in %.

    A head that does not depend on η (clean labels), trained once per seed, fills every column. With
    ``exact`` (the heads were solved by L-BFGS) the stages of a non-convex method are marked with *
    (the exact solve found a stationary point).
    """
    stages, rates = [], set()
    cells: dict[tuple[Stage, float], list[float]] = {}
    realized: dict[float, list[float]] = {}
    for record in records:
        config = record.config
        stages.append(config.stage)
        if config.stage.method.depends_on_eta:
            rates.add(config.corruption)
        cells.setdefault((config.stage, config.corruption), []).append(record.metrics[metric])
        if config.is_teacher:
            realized.setdefault(config.corruption, []).append(record.metrics["realized_corruption"])
    rates = sorted(rates)
    header = ["stage"] + [f"η={eta:g} ({np.mean(realized.get(eta, [np.nan])):.3f})" for eta in rates]
    body = []
    marked = False
    for stage in stage_order(stages):
        stationary = exact and not stage.method.convex
        row = [stage.label + ("*" if stationary else "")]
        marked |= stationary
        for eta in rates:
            values = cells.get((stage, stage.method.run_eta(eta)))
            row.append(f"{np.mean(values):.2f} ± {np.std(values):.2f}" if values else "—")
        body.append(row)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r))
        for r in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if marked:
        lines.append("* a stationary point: the exact solve of a non-convex objective")
    return "\n".join(lines)
