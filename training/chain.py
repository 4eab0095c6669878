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
    """One run per (η, seed); the clean-label head does not depend on η: one run per seed, at η = 0."""
    rates = [0.0] if stage.name == "clean" else rates
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


def chain_table(records, metric: str = "test_acc", stationary: tuple[str, ...] = ()) -> str:
    """Rows: stages in order; columns: η with the realised rate; cells: mean ± std (ddof 0) over seeds, in %.

    The clean-label head, trained once per seed, fills every column. Stages named in ``stationary``
    are marked with * (an exact solve of a non-convex objective: a stationary point).
    """
    stages, rates = [], set()
    cells: dict[tuple[Stage, float], list[float]] = {}
    realized: dict[float, list[float]] = {}
    for record in records:
        config = record.config
        stages.append(config.stage)
        if config.stage.name != "clean":
            rates.add(config.corruption)
        cells.setdefault((config.stage, config.corruption), []).append(record.metrics[metric])
        if config.is_teacher:
            realized.setdefault(config.corruption, []).append(record.metrics["realized_corruption"])
    rates = sorted(rates)
    header = ["stage"] + [f"η={eta:g} ({np.mean(realized.get(eta, [np.nan])):.3f})" for eta in rates]
    body = []
    marked = False
    for stage in stage_order(stages):
        row = [stage.label + ("*" if stage.name in stationary else "")]
        marked |= stage.name in stationary
        for eta in rates:
            values = cells.get((stage, 0.0 if stage.name == "clean" else eta))
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
