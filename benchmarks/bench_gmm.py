#!/usr/bin/env python3
"""Speed of the GMM theory: one BCE saddle point with two rounds, and a tuned α sweep with one round.

Targets on two CPU cores: a point (teacher and 2 students) in under 1 s; 20 α points, each tuned
per model for the teacher alone and with 1 student (few draws for the search, then polished with
the full draws), in under 15 min. Prints wall and CPU seconds with the machine's load, since a
shared CPU inflates wall time.

    python3 -m benchmarks.bench_gmm
    python3 -m benchmarks.bench_gmm --repeats 3 --skip-sweep
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

from gmm.config import LABELS, Config
from utils import checks
from utils.cli import Parser, add_bool_flag, add_threads, add_verbose
from utils.errors import exits_cleanly, run_script
from utils.progress import Steps

# The timed point: α = 2, ρ = 1/2, Δ = 1, θ = 0.2, teacher + 2 students, BCE, fixed bias.
POINT = Config(command="theory", alphas=(2.0,), stages=3, lambdas=(0.5, 0.3, 0.3), betas=(2.0, 2.0))


@dataclass(frozen=True)
class BenchConfig:
    repeats: int = 5
    sweep_points: int = 20
    sweep_labels: tuple[str, ...] = LABELS
    skip_sweep: bool = False
    threads: int = 1

    def validate(self) -> "BenchConfig":
        checks.integer("--repeats", self.repeats, 1, 10_000)
        checks.integer("--sweep-points", self.sweep_points, 1, 10_000)
        checks.integer("--threads", self.threads, 0, 1024)
        for labels in self.sweep_labels:
            checks.choice("--sweep-labels", labels, LABELS)
        return self


def build_parser() -> Parser:
    default = BenchConfig()
    parser = Parser(prog="python3 -m benchmarks.bench_gmm", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=default.repeats, help="timed solves of the single point")
    parser.add_argument("--sweep-points", type=int, default=default.sweep_points, help="α values of the tuned sweep")
    parser.add_argument(
        "--sweep-labels",
        nargs="+",
        choices=LABELS,
        default=list(default.sweep_labels),
        help="pseudo-labels of the sweeps",
    )
    add_bool_flag(parser, "--skip-sweep", help="time only the single point")
    add_threads(parser, default.threads, help="CPU threads of the timed work (0: automatic, which is 1 here)")
    add_bool_flag(parser, "--json", help="print rows as JSON")
    add_verbose(parser)
    return parser


def parse(argv: Sequence[str] | None) -> tuple[BenchConfig, bool]:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = BenchConfig(
        args.repeats, args.sweep_points, tuple(dict.fromkeys(args.sweep_labels)), args.skip_sweep, args.threads
    )
    return config.validate(), args.json


def timed(work) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def point_rows(config: BenchConfig, steps: Steps) -> list[dict]:
    """Median over repeats of a full solve (draws included) of the point, soft and hard labels."""
    from gmm.runs import problem_at
    from gmm.theory import solve_rs

    rows = []
    for labels in LABELS:
        problem = problem_at(POINT, POINT.alphas[0], labels)
        runs = [timed(lambda: solve_rs(problem, POINT.solver())) for _ in range(config.repeats)]
        result = runs[-1][2]
        rows.append(
            {
                "benchmark": f"BCE theory point, --rounds {POINT.rounds}, {labels}",
                "draws": result.draws,
                "iterations": sum(stage.iterations for stage in result.stages),
                "wall_s": statistics.median(r[0] for r in runs),
                "cpu_s": statistics.median(r[1] for r in runs),
                "target_s": 1.0,
                "load_avg": os.getloadavg()[0],
            }
        )
        steps.done(f"{rows[-1]['benchmark']}: {rows[-1]['wall_s']:.3f} s")
    return rows


def sweep_rows(config: BenchConfig, steps: Steps) -> list[dict]:
    """The whole ``gmm_distill.py tune --rounds 1`` over α = 0.5..10 (log-spaced), per label type."""
    import numpy as np

    from gmm.runs import run_tune

    alphas = tuple(float(a) for a in np.round(np.geomspace(0.5, 10.0, config.sweep_points), 4))
    rows = []
    for labels in config.sweep_labels:
        tune = Config(command="tune", alphas=alphas, stages=2, labels=(labels,)).validate()
        wall, cpu, (results, best) = timed(lambda: run_tune(tune))
        rows.append(
            {
                "benchmark": f"tuned α sweep, {len(alphas)} points, --rounds {tune.rounds}, {labels}",
                "evaluations": sum(row["evaluations"] for row in results),
                "infeasible": sum(row["infeasible"] for row in results),
                "wall_s": wall,
                "cpu_s": cpu,
                "target_s": 900.0,
                "load_avg": os.getloadavg()[0],
            }
        )
        steps.done(f"{rows[-1]['benchmark']}: {wall:.1f} s")
    return rows


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    config, as_json = parse(argv)
    import numpy as np

    from utils.threads import cpu_threads, training_threads

    total = len(LABELS) + (0 if config.skip_sweep else len(config.sweep_labels))
    threads = training_threads(config.threads, 0)  # the theory's arrays are small: 1 thread unless asked
    with cpu_threads(threads), Steps(total, "benchmarks") as steps:
        rows = point_rows(config, steps) + ([] if config.skip_sweep else sweep_rows(config, steps))
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads": threads,
    }
    if as_json:
        print(json.dumps({"config": dataclasses.asdict(config), "machine": machine, "rows": rows}, indent=2))
    else:
        from gmm.report import format_table

        print(f"machine: {machine}")
        columns = (
            "benchmark",
            "draws",
            "iterations",
            "evaluations",
            "infeasible",
            "wall_s",
            "cpu_s",
            "target_s",
            "load_avg",
        )
        print(format_table(rows, [c for c in columns if any(c in row for row in rows)]))
    return 0


if __name__ == "__main__":
    run_script(main)
