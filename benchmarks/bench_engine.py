"""Benchmark: the training engine against a loop in the reference code's style, and against the matmul floor.

Workload: a teacher stage on CIFAR-100-shaped synthetic features (50,000 × 512, K = 100, batch 128,
391 batches per epoch). Both loops run in this process on the same features:

- ours: ``training.engine.train_sgd`` (features in memory, randperm batches, closed-form gradient,
  one host sync per epoch);
- reference style: a ``DataLoader`` with 4 workers over in-memory tensors, an ``nn.Linear`` head,
  autograd, and ``.item()`` syncs on every batch, plus the same per-epoch test pass through a loader.
  With ``--stage student`` the reference style also re-runs the frozen teacher on every batch.

The floor is 391 batches × 128 × 512 × 100 multiply-adds forward and the same backward (the
gradient of W; features are frozen), at the rate this machine reaches on those exact matmul
shapes, measured here. Usage: ``python3 benchmarks/bench_engine.py [--epochs 3] [--stage teacher]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.heads import init_head  # noqa: E402
from models.losses import soft_cross_entropy  # noqa: E402
from training.engine import HeadProblem, SGDSettings, train_sgd  # noqa: E402

N, D, K, M, BATCH = 50_000, 512, 100, 10_000, 128


def make_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, D, generator=g)
    y = torch.randint(0, K, (N,), generator=g)
    y_test = torch.randint(0, K, (M,), generator=g)
    x = means[y] + 3.0 * torch.randn(N, D, generator=g)
    x_test = means[y_test] + 3.0 * torch.randn(M, D, generator=g)
    return x, y, x_test, y_test


def ours(x, y, x_test, y_test, targets, epochs: int) -> float:
    problem = HeadProblem(
        features=x, test_features=x_test, test_labels=y_test, train_index=torch.arange(N)[None],
        targets=targets[None], true_labels=y[None], noisy_labels=y[None],
        init=init_head(K, D, torch.Generator().manual_seed(0))[None], batch_seeds=[0], loss=soft_cross_entropy)
    settings = SGDSettings(lr=0.05, wd=5e-5, epochs=epochs, batch_size=BATCH, gamma=0.98, momentum=0.9, select="test")
    start = time.perf_counter()
    train_sgd(problem, settings)
    return (time.perf_counter() - start) / epochs


def reference_style(x, y, x_test, y_test, epochs: int, teacher: nn.Module | None) -> float:
    model = nn.Linear(D, K, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-5)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.98)
    train = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, num_workers=4)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=200, shuffle=False, num_workers=4)
    start = time.perf_counter()
    for _ in range(epochs):
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
    return (time.perf_counter() - start) / epochs


def matmul_floor(repeats: int = 5) -> tuple[float, float]:
    """(seconds per epoch at the measured rate, measured GFLOP/s) for the forward and weight-gradient matmuls."""
    xb, w = torch.randn(BATCH, D), torch.randn(K, D)
    g = torch.randn(BATCH, K)
    batches = -(-N // BATCH)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            torch.mm(xb, w.T)
            torch.mm(g.T, xb)
        best = min(best, time.perf_counter() - start)
    flops = 2 * 2 * batches * BATCH * D * K
    return best, flops / best / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stage", choices=("teacher", "student"), default="teacher")
    args = parser.parse_args(argv)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # first SGD pays torch's one-time lazy imports
    x, y, x_test, y_test = make_data()
    teacher = None
    targets = F.one_hot(y, K).float()
    if args.stage == "student":
        teacher = nn.Linear(D, K, bias=False).requires_grad_(False)
        targets = torch.softmax(teacher(x), dim=1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.stage} stage, {N}×{D} features, K={K}, batch {BATCH}, "
          f"{args.epochs} epochs each")
    floor, rate = matmul_floor()
    t_ours = ours(x, y, x_test, y_test, targets, args.epochs)
    t_ref = reference_style(x, y, x_test, y_test, args.epochs, teacher)
    print(f"{'loop':<28}{'s/epoch':>10}")
    print(f"{'reference style':<28}{t_ref:>10.3f}")
    print(f"{'ours':<28}{t_ours:>10.3f}")
    print(f"{'matmul floor':<28}{floor:>10.3f}   ({rate:.1f} GFLOP/s on these shapes)")
    print(f"speed-up over reference style: {t_ref / t_ours:.1f}×; ours / floor: {t_ours / floor:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
