"""The whole chain (teacher, R students, PLL) for every seed and noise rate, and its summary table."""

from __future__ import annotations

import dataclasses

import numpy as np

from training.config import PLL, TrainConfig
from training.stages import DeviceData, StageOutputs, finished_run, run_stage


def chain_stages(rounds: int, pll: bool = True) -> list[int | str]:
    return [*range(rounds + 1), *([PLL] if pll else [])]


def configs_for(base: TrainConfig, stage: int | str, seeds: list[int], rates: list[float]) -> list[TrainConfig]:
    return [dataclasses.replace(base, seed=s, corruption=eta, stage=stage) for eta in rates for s in seeds]


def run_chain(base: TrainConfig, seeds: list[int], rates: list[float], rounds: int, data: DeviceData,
              outputs: StageOutputs, resume: bool = False) -> list[dict]:
    """Every stage in order, each stage's heads stacked; later stages read the checkpoints the earlier ones wrote."""
    finished: list[dict] = []
    for stage in chain_stages(rounds):
        finished += run_stage(configs_for(base, stage, seeds, rates), data, outputs, resume)
    return finished


def chain_plan(base: TrainConfig, seeds: list[int], rates: list[float], rounds: int, outputs: StageOutputs
               ) -> list[tuple[TrainConfig, bool]]:
    """Every run of the chain with whether it is finished (a complete folder); writes nothing."""
    return [(config, finished_run(config, outputs, repair=False) is not None)
            for stage in chain_stages(rounds) for config in configs_for(base, stage, seeds, rates)]


def row_label(stage: int | str) -> str:
    return "PLL" if stage == PLL else ("teacher" if stage == 0 else f"student {stage}")


def chain_table(finished: list[dict], metric: str = "test_acc") -> str:
    """Rows: stages in order; columns: η with the realised rate; cells: mean ± std (ddof 0) over seeds, in %."""
    stages, rates = [], []
    cells: dict[tuple[object, float], list[float]] = {}
    realized: dict[float, list[float]] = {}
    for run in finished:
        config = TrainConfig.from_dict(run["config"])
        if config.stage not in stages:
            stages.append(config.stage)
        if config.corruption not in rates:
            rates.append(config.corruption)
        cells.setdefault((config.stage, config.corruption), []).append(run["metrics"][metric])
        if config.is_teacher:
            realized.setdefault(config.corruption, []).append(run["metrics"]["realized_corruption"])
    order = sorted(stages, key=lambda s: (s == PLL, 0 if s == PLL else int(s)))
    rates = sorted(rates)
    header = ["stage"] + [f"η={eta:g} ({np.mean(realized.get(eta, [np.nan])):.3f})" for eta in rates]
    body = []
    for stage in order:
        row = [row_label(stage)]
        for eta in rates:
            values = cells.get((stage, eta))
            row.append(f"{np.mean(values):.2f} ± {np.std(values):.2f}" if values else "—")
        body.append(row)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r))
             for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

