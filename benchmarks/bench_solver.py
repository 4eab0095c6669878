"""Benchmark of the Gram-matrix solver, every comparison measured side by side in one process.

    python3 -m benchmarks.bench_solver                      # K=4, n=500; Adam timed over 2,000 steps
    python3 -m benchmarks.bench_solver --adam-steps 100000  # the whole reference round (minutes)
    python3 -m benchmarks.bench_solver --thread-counts 1 2 4 --repeats 5

1. One solve (the teacher) by the exact solver and by the reference-style Adam baseline, on the same
   Phi and labels: time, squared Frobenius and max-norm residual. Adam's time over fewer steps is
   extrapolated linearly to ``--reference-steps`` (its per-step cost is constant) and labelled so;
   the script checks that the reference's stopping rule (loss < 1e-5) did not fire.
2. A whole default run (Phi, eigenpairs, the teacher and the students) at each of
   ``--thread-counts``, alternating the order over ``--repeats``: the medians pick the solver's
   default ``--threads``; outputs are compared bit for bit within a count and across counts.
3. Whole command-line runs in a fresh process (imports and saving included): exact and ``--approx``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from gram_theory.config import DEFAULT_THREADS, GRAMS, Config
from utils import checks
from utils.cli import Parser, add_seed, add_threads
from utils.errors import exits_cleanly, run_script
from utils.progress import Steps

ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> Parser:
    parser = Parser(prog="python3 -m benchmarks.bench_solver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=4, help="number of classes K")
    parser.add_argument("--n", type=int, default=500, help="samples per class")
    parser.add_argument(
        "--corruption",
        "--eta",
        dest="corruption",
        type=float,
        default=0.5,
        metavar="ETA",
        help="label corruption rate eta",
    )
    parser.add_argument(
        "--wd",
        "--lbd",
        "--weight-decay",
        dest="wd",
        type=float,
        default=1e-5,
        metavar="LAMBDA",
        help="regularisation lambda",
    )
    add_seed(parser, 0, help="seed of Phi, the labels and Adam's start (default 0)")
    parser.add_argument("--gram", choices=GRAMS, default="features", help="Gram matrix construction")
    parser.add_argument("--adam-steps", type=int, default=2000, help="Adam steps actually run")
    parser.add_argument("--reference-steps", type=int, default=100_000, help="the reference's max_iter")
    add_threads(parser, DEFAULT_THREADS, help="CPU threads for sections 1 and 3 (0: every available CPU)")
    parser.add_argument(
        "--thread-counts", type=int, nargs="+", default=[1, 2], metavar="N", help="thread counts compared in section 2"
    )
    parser.add_argument("--repeats", type=int, default=3, help="whole runs per thread count in section 2")
    parser.add_argument("--skip-cli", action="store_true", help="skip section 3")
    return parser


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from utils.provenance import package_versions

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = package_versions(("numpy", "scipy"))
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}, python {versions['python']}, "
        f"numpy {versions['numpy']}, scipy {versions['scipy']}, load average {load:.2f} at start"
    )


def row(name: str, steps: str, seconds: str, squared: float, max_norm: float, note: str) -> str:
    return f"{name:<22}{steps:>8}{seconds:>12}{squared:>14.3e}{max_norm:>13.3e}  {note}"


def one_solve(config: Config, adam_steps: int, reference_steps: int) -> None:
    """Section 1: the teacher by Newton and by Adam, same Phi and labels."""
    import numpy as np

    from gram_theory import adam, data, experiment, newton, stats
    from gram_theory.fixed_point import residual, squared_residual
    from utils.seeding import numpy_rng

    lbd, eta = config.wd[0], config.corruption[0]
    start = time.perf_counter()
    setup = experiment.prepare(config)
    setup_seconds = time.perf_counter() - start
    given_labels = data.corrupt(setup.labels, eta, setup.uniforms, setup.other)
    given = data.one_hot(given_labels, config.k)

    def accuracy(outputs: np.ndarray) -> str:
        return "accuracy clean/noisy/all {:.2f}/{:.2f}/{:.2f} %".format(
            *stats.accuracy(outputs, setup.labels, given_labels)
        )

    gram = setup.gram
    print(
        f"1. one solve (the teacher): K={config.k} n={config.n} N={given.shape[0]} corruption={eta:g} wd={lbd:g} "
        f"gram={config.gram} seed={config.seed} threads={config.threads}; setup (Phi, labels, eigenpairs) "
        f"{setup_seconds:.2f} s, shared by both methods"
    )
    print(f"{'method':<22}{'steps':>8}{'time s':>12}{'|Y-F(Y)|_F^2':>14}{'max|Y-F(Y)|':>13}")
    start = time.perf_counter()
    exact = newton.solve_round(
        gram,
        given,
        lbd,
        setup.spectrum,
        tol=config.tol,
        max_iter=config.max_iter,
        start=None if setup.symmetric else np.full_like(given, 1.0 / config.k),
        symmetric=setup.symmetric,
    )
    exact_seconds = time.perf_counter() - start
    exact_max = residual(gram, given, exact.outputs, lbd)
    print(
        row(
            "newton (default)",
            str(exact.iterations),
            f"{exact_seconds:.3f}",
            squared_residual(gram, given, exact.outputs, lbd),
            exact_max,
            accuracy(exact.outputs),
        )
    )

    settings = adam.AdamSettings(max_steps=adam_steps)
    start = time.perf_counter()
    result = adam.adam_round(gram.astype(np.float32), given, lbd, settings, numpy_rng(config.seed, "adam", lbd, eta, 1))
    adam_seconds = time.perf_counter() - start
    outputs = result.outputs.astype(np.float64)
    adam_max = residual(gram, given, outputs, lbd)
    stop = "met" if result.stopped else "not met"
    print(
        row(
            "adam (reference-style)",
            str(result.steps),
            f"{adam_seconds:.2f}",
            squared_residual(gram, given, outputs, lbd),
            adam_max,
            f"measured; stopping rule (loss < {settings.stop_loss:g}) {stop}; {accuracy(outputs)}",
        )
    )
    per_round = adam_seconds
    if not result.stopped and result.steps < reference_steps:
        per_round = adam_seconds * reference_steps / result.steps
        print(
            f"{'adam (reference-style)':<22}{reference_steps:>8}{per_round:>12.1f}{'-':>14}{'-':>13}  "
            f"EXTRAPOLATED x{reference_steps / result.steps:g} from {result.steps} steps; residual not measured"
        )
    print(
        f"speed-up per solve: {per_round / exact_seconds:.0f}x; max-norm residual "
        f"{adam_max / max(exact_max, np.finfo(float).tiny):.1e}x smaller (vs Adam after {result.steps} steps)"
    )


def thread_counts(config: Config, counts: Sequence[int], repeats: int) -> None:
    """Section 2: whole runs at each thread count, order alternating by repeat."""
    import dataclasses

    import numpy as np

    from gram_theory import experiment
    from utils.threads import cpu_threads

    print(
        f"\n2. whole run (Phi, eigenpairs, {config.solves} solves) by thread count, {repeats} repeats, "
        "order alternating"
    )
    seconds: dict[int, list[float]] = {count: [] for count in counts}
    outputs: dict[int, list[np.ndarray]] = {count: [] for count in counts}
    for repeat in range(repeats):
        for count in counts if repeat % 2 == 0 else list(reversed(counts)):
            with cpu_threads(count):
                start = time.perf_counter()
                run_config = dataclasses.replace(config, threads=count)
                points = experiment.run(run_config, experiment.prepare(run_config))
                seconds[count].append(time.perf_counter() - start)
            outputs[count].append(points[0][0].outputs)
    reference = outputs[counts[0]][0]
    print(
        f"{'threads':>8}{'median s':>10}{'min s':>8}{'max s':>8}  same bits every repeat  "
        f"max |difference| from {counts[0]} thread(s)"
    )
    for count in counts:
        same = all(np.array_equal(o, outputs[count][0]) for o in outputs[count])
        print(
            f"{count:>8}{statistics.median(seconds[count]):>10.2f}{min(seconds[count]):>8.2f}"
            f"{max(seconds[count]):>8.2f}  {'yes' if same else 'NO':<22}  "
            f"{np.abs(outputs[count][0] - reference).max():.1e}"
        )
    best = min(counts, key=lambda count: statistics.median(seconds[count]))
    print(f"fastest: {best} thread(s)")


def cli_seconds(*flags: str) -> float:
    """Wall time of a whole ``numerical_solving.py`` run in a fresh process (imports and saving included)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "numerical_solving.py"), "--out", out, *flags],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        return time.perf_counter() - start


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = Config(
        k=args.k,
        n=args.n,
        wd=(args.wd,),
        corruption=(args.corruption,),
        seed=args.seed,
        gram=args.gram,
        threads=args.threads,
    ).validate()
    for count in args.thread_counts:
        checks.integer("--thread-counts", count, 1, 4096)
    checks.integer("--adam-steps", args.adam_steps, 1)
    checks.integer("--reference-steps", args.reference_steps, 1)
    checks.integer("--repeats", args.repeats, 1)
    from utils.threads import available_cpus, cpu_threads

    threads = config.threads or available_cpus()
    print(f"machine: {machine()}")
    with Steps(2 if args.skip_cli else 3, "benchmark sections") as sections:
        with cpu_threads(threads):
            one_solve(config, args.adam_steps, args.reference_steps)
        sections.done("one solve per method")
        thread_counts(config, args.thread_counts, args.repeats)
        sections.done("thread counts")
        if not args.skip_cli:
            _whole_commands(args, config)
            sections.done("whole command-line runs")
    return 0


def _whole_commands(args, config: Config) -> None:
    """Section 3: the wall time of whole numerical_solving.py runs."""
    common = [
        "--k",
        str(args.k),
        "--n",
        str(args.n),
        "--corruption",
        str(args.corruption),
        "--wd",
        str(args.wd),
        "--seed",
        str(args.seed),
        "--gram",
        args.gram,
        "--threads",
        str(args.threads),
    ]
    print(f"\n3. whole command-line runs, --threads {args.threads}")
    print(f"python3 numerical_solving.py ({config.solves} exact solves): {cli_seconds(*common):.2f} s wall")
    print(
        f"python3 numerical_solving.py --approx ({config.solves} solves): {cli_seconds(*common, '--approx'):.2f} s wall"
    )


if __name__ == "__main__":
    run_script(main)
