#!/usr/bin/env python3
"""Validate the GMM replica theory against simulations at N = 1000, 2000, 4000 (20 trials each).

For every configuration, N and model: theory, simulation mean ± standard error, the gap
simulation − theory and z = gap/SE; then per configuration and N the largest |gap| and the
largest SE. The first three configurations are the protocol's check (theory within ~2 SE at
every N). The last one learns the bias at ρ = 1/2, where the theory has b ≡ 0 but a finite
training set gives B ≈ logit(mean label) = O(1/√M): its gap is a finite-size effect that
shrinks with N, which is why ``--bias fix`` (B = 0) is used to compare with the theory.

    python3 -m scripts.validate_gmm                # ~10 minutes on 2 cores
    python3 -m scripts.validate_gmm --N 500 1000 --trials 10
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Sequence

from gmm.config import Config, SolverOptions
from utils import checks
from utils.cli import Parser, add_bool_flag, add_seed, add_threads, add_verbose
from utils.errors import exits_cleanly, run_script
from utils.progress import Steps

# name → (α, ρ, Δ, θ, λ per model, β per student, labels, loss, bias)
CONFIGS = {
    "bce-soft-fix": (2.0, 0.5, 1.0, 0.2, (0.5, 0.3, 0.3), (2.0, 2.0), "soft", "bce", "fix"),
    "bce-hard-fix": (3.0, 0.4, 0.8, 0.1, (0.1, 0.1, 1.0), (1.0, 1.0), "hard", "bce", "fix"),
    "bce-soft-learn-rho0.3": (1.5, 0.3, 0.5, 0.2, (0.5, 0.1, 0.1), (3.0, 3.0), "soft", "bce", "learn"),
    "bce-hard-learn-rho0.5": (2.0, 0.5, 1.0, 0.2, (5.0, 5.0), (1.0,), "hard", "bce", "learn"),
}


@dataclass(frozen=True)
class ValidationConfig:
    sizes: tuple[int, ...] = (1000, 2000, 4000)
    trials: int = 20
    seed: int = 0
    samples: int = 65536
    threads: int = 0
    configs: tuple[str, ...] = tuple(CONFIGS)

    def validate(self) -> "ValidationConfig":
        for N in self.sizes:
            checks.integer("--N", N, 2)
        checks.integer("--trials", self.trials, 2)
        checks.seed("--seed", self.seed)
        checks.integer("--samples", self.samples, 16)
        checks.integer("--threads", self.threads, 0, 1024)
        for name in self.configs:
            simulation_config(name, self, max(self.sizes)).validate()  # sizes that fit in memory, among others
        return self


def simulation_config(name: str, config: ValidationConfig, N: int) -> Config:
    """The ``gmm_distill.py simulate`` settings of configuration ``name`` at dimension N."""
    alpha, rho, delta, theta, lambdas, betas, labels, loss, bias = CONFIGS[name]
    return Config(
        command="simulate",
        alphas=(alpha,),
        rho=rho,
        delta=delta,
        corruption=theta,
        stages=len(lambdas),
        lambdas=lambdas,
        betas=betas,
        labels=(labels,),
        loss=loss,
        bias=bias,
        samples=config.samples,
        seed=config.seed,
        N=N,
        trials=config.trials,
        threads=config.threads,
    )


def build_parser() -> Parser:
    default = ValidationConfig()
    parser = Parser(prog="python3 -m scripts.validate_gmm", description=__doc__.split("\n")[0])
    parser.add_argument("--N", type=int, nargs="+", default=list(default.sizes), help="dimensions")
    parser.add_argument("--trials", type=int, default=default.trials, help="training sets per N")
    add_seed(parser, default.seed, help=f"seed of the theory draws and the training sets (default {default.seed})")
    parser.add_argument("--samples", type=int, default=default.samples, help="theory draws")
    add_threads(parser, default.threads, help="CPU threads (default 0: automatic, which is one thread)")
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="configurations to validate"
    )
    add_bool_flag(parser, "--json", help="print rows as JSON")
    add_verbose(parser)
    return parser


def parse(argv: Sequence[str] | None) -> tuple[ValidationConfig, bool]:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = ValidationConfig(
        tuple(args.N), args.trials, args.seed, args.samples, args.threads, tuple(dict.fromkeys(args.configs))
    )
    return config.validate(), args.json


def validation_rows(config: ValidationConfig, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Per (configuration, N, model) comparison rows and per (configuration, N) summary rows."""
    from gmm.runs import problem_at, simulation_rows
    from gmm.simulate import SimulationOptions

    rows, summary = [], []
    solver = SolverOptions(samples=config.samples, seed=config.seed)
    jobs = [(name, N) for name in config.configs for N in config.sizes]
    with Steps(len(jobs), "simulations", enabled=progress) as steps:
        for name, N in jobs:
            point = simulation_config(name, config, N)
            threads = point.cpu_threads()
            start = time.perf_counter()
            problem = problem_at(point, point.alphas[0], point.labels[0])
            compared = simulation_rows(problem, SimulationOptions(N, config.trials, config.seed, threads), solver)
            seconds = time.perf_counter() - start
            for row in compared:
                rows.append(
                    {
                        "config": name,
                        "N": N,
                        "model": row["model"],
                        "theory": row["theory"],
                        "simulation": row["error"],
                        "standard_error": row["standard_error"],
                        "gap": row["error"] - row["theory"],
                        "z": row["z"],
                    }
                )
            summary.append(
                {
                    "config": name,
                    "N": N,
                    "trials": config.trials,
                    "threads": threads,
                    "max_abs_gap": max(abs(row["error"] - row["theory"]) for row in compared),
                    "max_standard_error": max(row["standard_error"] for row in compared),
                    "max_abs_z": max(abs(row["z"]) for row in compared),
                    "seconds": round(seconds, 1),
                }
            )
            steps.done(f"{name}, N={N}: largest |z| {summary[-1]['max_abs_z']:.2f}")
    return rows, summary


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    config, as_json = parse(argv)
    rows, summary = validation_rows(config, progress=True)
    if as_json:
        print(json.dumps({"config": asdict(config), "rows": rows, "summary": summary}, indent=2))
    else:
        from gmm.report import format_table

        print(format_table(rows, ("config", "N", "model", "theory", "simulation", "standard_error", "gap", "z")))
        print()
        print(
            format_table(
                summary,
                ("config", "N", "trials", "threads", "max_abs_gap", "max_standard_error", "max_abs_z", "seconds"),
            )
        )
    return 0


if __name__ == "__main__":
    run_script(main)
