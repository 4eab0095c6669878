"""Benchmark: the training engine against a loop in the reference code's style, and against the matmul floor.

Workload: a teacher stage (or a student stage, ``--stage student``) on CIFAR-100-shaped synthetic
features (50,000 × 512, K = 100, batch 128, 391 batches per epoch, a 10,000-row test pass per
epoch). Everything runs in this process on the same features, timed epoch by epoch:

- ours: ``training.engine.train_sgd`` (features in memory, randperm batches, closed-form gradient,
  fused SGD update, one host sync per epoch);
- reference style: a ``DataLoader`` with its default 4 workers over in-memory tensors, an
  ``nn.Linear`` head, autograd, ``.item()`` syncs on every batch and the per-epoch test pass
  through a loader; for a student stage it re-runs the frozen teacher on every batch;
- matmul floor: 391 × 128 × 512 × 100 multiply-adds forward and the same backward (the weight
  gradient; features are frozen), timed on those exact shapes with the operands in cache;
- gather + matmul: the same matmuls on batches gathered from random rows of the 100 MB feature
  matrix, as every epoch with random batches must read them (an informative bound, not a goal).

With ``--baseline REV`` the engine as it was at git revision REV (``training/engine.py`` read with
``git show``) runs too, on the same problem, for a before/after comparison in one run.

The loops run in ``--repeats`` repeats of ``--epochs`` epochs each, in an order that alternates
from round to round, and the floor and the gather bound are measured after every epoch, so that
a machine whose speed drifts slows every loop alike; the table gives medians over all epochs
(and repeats), the ratios are of medians. Usage:
``python3 -m benchmarks.bench_engine [--repeats 3] [--epochs 2] [--stage teacher] [--baseline REV]``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models.heads import init_head
from models.losses import SoftCrossEntropy
from training import engine as current_engine
from utils.cli import Parser
from utils.methods import method
from utils.progress import Steps

N, D, K, M, BATCH = 50_000, 512, 100, 10_000, 128
LR, WD, MOMENTUM, GAMMA = 0.05, 5e-5, 0.9, 0.98


def make_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, D, generator=g)
    y = torch.randint(0, K, (N,), generator=g)
    y_test = torch.randint(0, K, (M,), generator=g)
    x = means[y] + 3.0 * torch.randn(N, D, generator=g)
    x_test = means[y_test] + 3.0 * torch.randn(M, D, generator=g)
    return x, y, x_test, y_test


def batch_order(engine) -> dict:
    """The batch-order argument of ``engine.HeadProblem``: one stream, in whichever form that revision takes."""
    if "orders" in engine.HeadProblem.__dataclass_fields__:
        from training.randomness import IndependentOrder

        return {"orders": [IndependentOrder(torch.Generator().manual_seed(0))]}
    return {"batch_seeds": [0]}


def engine_loop(
    x, y, x_test, y_test, targets, epochs: int, between, engine=current_engine, loss=SoftCrossEntropy()
) -> list[float]:
    """Seconds per epoch of ``engine.train_sgd``; ``between()`` runs after each epoch, untimed."""
    problem = engine.HeadProblem(
        features=x,
        test_features=x_test,
        test_labels=y_test,
        train_index=torch.arange(N)[None],
        targets=targets[None],
        true_labels=y[None],
        noisy_labels=y[None],
        init=init_head(K, D, torch.Generator().manual_seed(0))[None],
        loss=loss,
        **batch_order(engine),
    )
    settings = engine.SGDSettings(
        lr=LR, wd=WD, epochs=epochs, batch_size=BATCH, gamma=GAMMA, momentum=MOMENTUM, select="test"
    )
    times: list[float] = []

    def timed(epoch_numbers):
        for epoch in epoch_numbers:
            start = time.perf_counter()
            yield epoch  # the engine trains this epoch before asking for the next
            times.append(time.perf_counter() - start)
            between()

    engine.train_sgd(problem, settings, progress=timed)
    return times


def profile_ours(data, targets) -> int:
    from torch.profiler import ProfilerActivity, profile

    engine_loop(*data, targets, 1, lambda: None)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        seconds = engine_loop(*data, targets, 2, lambda: None)
    print(f"ours, 2 epochs under the profiler: {sum(seconds):.3f} s (the profiler adds a few µs per op)")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


def module_at(revision: str, path: str):
    """A file of this repository as it was at a git revision, imported as a module of its own."""
    repo = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:{path}"], cwd=repo, check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            f"error: cannot read {path} at revision {revision!r} ({error}); give a revision of this git repository"
        )
    module = types.ModuleType(f"{Path(path).stem}_at_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up by name
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def exists_at(revision: str, path: str) -> bool:
    repo = Path(__file__).resolve().parents[1]
    return (
        subprocess.run(["git", "cat-file", "-e", f"{revision}:{path}"], cwd=repo, capture_output=True).returncode == 0
    )


def baseline_at(revision: str):
    """(engine module, soft cross-entropy loss) as they were at ``revision``; the engine imports that
    revision's ``training/sgd.py`` where it had one."""
    losses = module_at(revision, "models/losses.py")
    loss = losses.SoftCrossEntropy() if hasattr(losses, "SoftCrossEntropy") else losses.soft_cross_entropy
    if not exists_at(revision, "training/sgd.py"):
        return module_at(revision, "training/engine.py"), loss
    current = sys.modules.get("training.sgd")
    sys.modules["training.sgd"] = module_at(revision, "training/sgd.py")
    try:
        return module_at(revision, "training/engine.py"), loss
    finally:
        if current is None:
            del sys.modules["training.sgd"]
        else:
            sys.modules["training.sgd"] = current


def reference_style(x, y, x_test, y_test, epochs: int, teacher: nn.Module | None, between) -> list[float]:
    model = nn.Linear(D, K, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=GAMMA)
    train = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, num_workers=4)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=200, shuffle=False, num_workers=4)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        for inputs, labels in train:
            outputs = model(inputs)
            if teacher is None:
                loss = F.cross_entropy(outputs, labels)
            else:
                with torch.no_grad():
                    soft = torch.softmax(teacher(inputs), dim=1)
                loss = -(soft * torch.log_softmax(outputs, dim=1)).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * inputs.shape[0]
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            seen += inputs.shape[0]
        scheduler.step()
        with torch.no_grad():
            test_correct = 0
            for inputs, labels in test:
                test_correct += (model(inputs).argmax(dim=1) == labels).sum().item()
        times.append(time.perf_counter() - start)
        between()
    return times


def matmul_floor() -> float:
    """Seconds for one epoch's forward and weight-gradient matmuls, operands in cache."""
    xb, w, g = torch.randn(BATCH, D), torch.randn(K, D), torch.randn(BATCH, K)
    start = time.perf_counter()
    for _ in range(-(-N // BATCH)):
        torch.mm(xb, w.T)
        torch.mm(g.T, xb)
    return time.perf_counter() - start


def gather_and_matmul(x: torch.Tensor, generator: torch.Generator) -> float:
    """Seconds for the same matmuls on batches gathered from random rows of ``x``."""
    w, g = torch.randn(K, D), torch.randn(BATCH, K)
    xb = torch.empty(BATCH, D)
    order = torch.randperm(N, generator=generator)
    start = time.perf_counter()
    for rows in order.split(BATCH):
        batch = torch.index_select(x, 0, rows, out=xb[: rows.numel()])
        torch.mm(batch, w.T)
        torch.mm(g[: rows.numel()].T, batch)
    return time.perf_counter() - start


def build_parser() -> Parser:
    parser = Parser(prog="python3 -m benchmarks.bench_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats, each loop's order alternating")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per loop per repeat")
    parser.add_argument("--stage", choices=("teacher", "student"), default="teacher", help="which stage's loss")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time the engine as it was at this git revision (default: none)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead, profile two epochs of ours with torch.profiler and print where the time goes",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    baseline = baseline_at(args.baseline) if args.baseline else None
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # first SGD pays torch's one-time lazy imports
    x, y, x_test, y_test = make_data()
    teacher = None
    targets = F.one_hot(y, K).float()
    if method(args.stage).learns_from_a_model:  # a student: the soft targets of a frozen model
        teacher = nn.Linear(D, K, bias=False).requires_grad_(False)
        targets = torch.softmax(teacher(x), dim=1)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.stage} stage, {N}×{D} features, K={K}, batch {BATCH}, "
        f"{args.repeats} repeats × {args.epochs} epochs per loop"
    )
    floors: list[float] = []
    gathers: list[float] = []
    generator = torch.Generator().manual_seed(1)

    def measure_bounds():
        floors.append(matmul_floor())
        gathers.append(gather_and_matmul(x, generator))

    data = (x, y, x_test, y_test)
    if args.profile:
        return profile_ours(data, targets)
    loops = {"ours": lambda: engine_loop(*data, targets, args.epochs, measure_bounds)}
    if baseline:
        loops[f"engine at {args.baseline}"] = lambda: engine_loop(
            *data, targets, args.epochs, measure_bounds, *baseline
        )
    loops["reference style"] = lambda: reference_style(*data, args.epochs, teacher, measure_bounds)
    times: dict[str, list[float]] = {name: [] for name in loops}
    measure_bounds()
    with Steps(args.repeats * len(loops), "timed loops") as steps:
        for round_number in range(args.repeats):
            names = list(loops) if round_number % 2 == 0 else list(reversed(loops))
            for name in names:
                times[name] += loops[name]()
                steps.done(f"repeat {round_number + 1}: {name}")
    rows = list(times.items())
    rows += [("matmul floor", floors), ("gather + matmul", gathers)]
    median = {label: statistics.median(values) for label, values in rows}
    print(f"{'loop':<32}{'median s/epoch':>15}{'min':>9}{'max':>9}")
    for label, values in rows:
        print(f"{label:<32}{median[label]:>15.3f}{min(values):>9.3f}{max(values):>9.3f}")
    rate = 2 * 2 * -(-N // BATCH) * BATCH * D * K / median["matmul floor"] / 1e9
    print(f"matmul rate on these shapes: {rate:.1f} GFLOP/s")
    ours_median = median["ours"]
    print(
        f"speed-up over reference style: {median['reference style'] / ours_median:.1f}×; "
        f"ours / matmul floor: {ours_median / median['matmul floor']:.2f}×; "
        f"ours / (gather + matmul): {ours_median / median['gather + matmul']:.2f}×"
    )
    if baseline:
        print(f"speed-up over the engine at {args.baseline}: {median[f'engine at {args.baseline}'] / ours_median:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
