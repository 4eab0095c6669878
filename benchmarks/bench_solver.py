"""Benchmark: the exact solver against the reference-style Adam baseline on one round, same Phi and labels.

    python -m benchmarks.bench_solver                      # K=4, n=500; Adam timed over 2,000 steps
    python -m benchmarks.bench_solver --adam-steps 100000  # the whole reference round (minutes)

Prints one row per method (time, squared Frobenius and max-norm residual), the speed-up, and the
wall time of whole command-line runs (10 exact rounds; ``--approx``). Adam's time over fewer steps is
extrapolated linearly to ``--reference-steps`` (its per-step cost is constant) and labelled so; the
script checks that the reference's stopping rule (loss < 1e-5) did not fire in the steps it ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from gram_theory import adam, data, experiment, newton, stats
from gram_theory.fixed_point import residual, squared_residual
from utils.provenance import package_versions
from utils.seeding import numpy_rng

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = package_versions(("numpy", "scipy"))
    return (f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}, python {versions['python']}, "
            f"numpy {versions['numpy']}, scipy {versions['scipy']}, load average {load:.2f} at start")


def row(name: str, steps: str, seconds: str, squared: float, max_norm: float, note: str) -> str:
    return f"{name:<22}{steps:>8}{seconds:>12}{squared:>14.3e}{max_norm:>13.3e}  {note}"


def cli_seconds(*flags: str) -> float:
    """Wall time of a whole ``numerical_solving.py`` run in a fresh process (imports and saving included)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "numerical_solving.py"), "--out", out, *flags],
                       check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--lbd", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gram", choices=data.GRAMS, default="features")
    parser.add_argument("--adam-steps", type=int, default=2000, help="Adam steps actually run")
    parser.add_argument("--reference-steps", type=int, default=100_000, help="the reference's max_iter")
    parser.add_argument("--skip-cli", action="store_true", help="skip the whole-run timings")
    args = parser.parse_args(argv)

    config = experiment.Config(k=args.k, n=args.n, lbd=(args.lbd,), eta=(args.eta,), seed=args.seed,
                               gram=args.gram)
    print(f"machine: {machine()}")
    start = time.perf_counter()
    setup = experiment.prepare(config)
    setup_seconds = time.perf_counter() - start
    given_labels = data.corrupt(setup.labels, args.eta, setup.uniforms, setup.other)
    given = data.one_hot(given_labels, args.k)

    def accuracy(outputs: np.ndarray) -> str:
        return "accuracy clean/noisy/all {:.2f}/{:.2f}/{:.2f} %".format(
            *stats.accuracy(outputs, setup.labels, given_labels))

    gram = setup.gram
    print(f"problem: K={args.k} n={args.n} N={given.shape[0]} eta={args.eta:g} lbd={args.lbd:g} gram={args.gram} "
          f"seed={args.seed}; setup (Phi, labels, eigenpairs) {setup_seconds:.2f} s, shared by both methods")
    print(f"{'method':<22}{'steps':>8}{'time s':>12}{'|Y-F(Y)|_F^2':>14}{'max|Y-F(Y)|':>13}")

    start = time.perf_counter()
    exact = newton.solve_round(gram, given, args.lbd, setup.spectrum, tol=config.tol, max_iter=config.max_iter,
                               start=None if setup.symmetric else np.full_like(given, 1.0 / args.k),
                               symmetric=setup.symmetric)
    exact_seconds = time.perf_counter() - start
    exact_max = residual(gram, given, exact.outputs, args.lbd)
    print(row("newton (default)", str(exact.iterations), f"{exact_seconds:.3f}",
              squared_residual(gram, given, exact.outputs, args.lbd), exact_max,
              f"one round (teacher); {accuracy(exact.outputs)}"))

    gram32 = gram.astype(np.float32)
    settings = adam.AdamSettings(max_steps=args.adam_steps)
    start = time.perf_counter()
    result = adam.adam_round(gram32, given, args.lbd, settings, numpy_rng(args.seed, "adam", args.lbd, args.eta, 1))
    adam_seconds = time.perf_counter() - start
    outputs = result.outputs.astype(np.float64)
    adam_max = residual(gram, given, outputs, args.lbd)
    stop = "met" if result.stopped else "not met"
    print(row("adam (reference-style)", str(result.steps), f"{adam_seconds:.2f}",
              squared_residual(gram, given, outputs, args.lbd), adam_max,
              f"measured; stopping rule (loss < {settings.stop_loss:g}) {stop}; {accuracy(outputs)}"))
    per_round = adam_seconds
    if not result.stopped and result.steps < args.reference_steps:
        per_round = adam_seconds * args.reference_steps / result.steps
        print(f"{'adam (reference-style)':<22}{args.reference_steps:>8}{per_round:>12.1f}{'-':>14}{'-':>13}  "
              f"EXTRAPOLATED x{args.reference_steps / result.steps:g} from {result.steps} steps; "
              "residual not measured")
    print(f"speed-up per round: {per_round / exact_seconds:.0f}x; max-norm residual "
          f"{adam_max / max(exact_max, np.finfo(float).tiny):.1e}x smaller (vs Adam after {result.steps} steps)")

    if not args.skip_cli:
        common = ["--k", str(args.k), "--n", str(args.n), "--eta", str(args.eta), "--lbd", str(args.lbd),
                  "--seed", str(args.seed), "--gram", args.gram]
        print(f"whole run, python numerical_solving.py (10 exact rounds): {cli_seconds(*common):.2f} s wall")
        print(f"whole run, python numerical_solving.py --approx (10 rounds): "
              f"{cli_seconds(*common, '--approx'):.2f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
