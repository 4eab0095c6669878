#!/usr/bin/env python3
"""Speed of the GMM theory: one BCE saddle point with T = 3, and a tuned α sweep with T = 2.

Targets on two CPU cores: a point in under 1 s; 20 α points, each tuned per stage for
T = 1 and 2 (few draws for the search, then polished with the full draws), in under 15 min.
Prints wall and CPU seconds with the machine's load, since a shared CPU inflates wall time.

    python3 -m benchmarks.bench_gmm
    python3 -m benchmarks.bench_gmm --repeats 3 --skip-sweep
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gmm.model import Problem
from gmm.report import format_table
from gmm.runs import Config, check_config, run_tune
from gmm.theory import SolverOptions, solve_rs
from utils.cli import Parser, add_bool_flag
from utils.errors import UserError, exits_cleanly

POINT = Problem(2.0, 0.5, 1.0, 0.2, (0.5, 0.3, 0.3), (2.0, 2.0), "soft", "bce", "fix")


@dataclass(frozen=True)
class BenchConfig:
    repeats: int
    sweep_points: int
    sweep_labels: tuple[str, ...]
    skip_sweep: bool
    json: bool


def parse(argv: Sequence[str] | None) -> BenchConfig:
    parser = Parser(prog="bench_gmm.py", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed solves of the single point")
    parser.add_argument("--sweep-points", type=int, default=20, help="α values of the tuned sweep")
    parser.add_argument("--sweep-labels", nargs="+", choices=["soft", "hard"], default=["soft", "hard"])
    add_bool_flag(parser, "--skip-sweep", help="time only the single point")
    add_bool_flag(parser, "--json", help="print rows as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.sweep_points < 1:
        raise UserError("--repeats and --sweep-points must be at least 1")
    return BenchConfig(args.repeats, args.sweep_points, tuple(args.sweep_labels), args.skip_sweep, args.json)


def timed(work) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def point_rows(config: BenchConfig) -> list[dict]:
    """Median over repeats of a full solve (draws included) of one T = 3 BCE point, soft and hard."""
    rows = []
    for labels in ("soft", "hard"):
        problem = dataclasses.replace(POINT, labels=labels)
        runs = [timed(lambda: solve_rs(problem, SolverOptions())) for _ in range(config.repeats)]
        result = runs[-1][2]
        rows.append({"benchmark": f"BCE theory point, T=3, {labels}", "draws": result.draws,
                     "iterations": sum(stage.iterations for stage in result.stages),
                     "wall_s": statistics.median(r[0] for r in runs), "cpu_s": statistics.median(r[1] for r in runs),
                     "target_s": 1.0, "load_avg": os.getloadavg()[0]})
    return rows


def sweep_rows(config: BenchConfig) -> list[dict]:
    """The whole ``gmm_distill.py tune --stages 2`` over α = 0.5..10 (log-spaced), per label type."""
    alphas = tuple(float(a) for a in np.round(np.geomspace(0.5, 10.0, config.sweep_points), 4))
    rows = []
    for labels in config.sweep_labels:
        tune = check_config(Config(command="tune", alphas=alphas, stages=2, labels=(labels,)))
        wall, cpu, (results, best) = timed(lambda: run_tune(tune))
        rows.append({"benchmark": f"tuned α sweep, {len(alphas)} points, T=2, {labels}",
                     "evaluations": sum(row["evaluations"] for row in results),
                     "infeasible": sum(row["infeasible"] for row in results),
                     "wall_s": wall, "cpu_s": cpu, "target_s": 900.0, "load_avg": os.getloadavg()[0]})
    return rows


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    config = parse(argv)
    rows = point_rows(config) + ([] if config.skip_sweep else sweep_rows(config))
    machine = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
               "python": platform.python_version(), "numpy": np.__version__}
    if config.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
    else:
        print(f"machine: {machine}")
        columns = ("benchmark", "draws", "iterations", "evaluations", "infeasible", "wall_s", "cpu_s", "target_s",
                   "load_avg")
        print(format_table(rows, [c for c in columns if any(c in row for row in rows)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
