"""The one training engine: a stack of H linear heads trained together by SGD on in-memory features.

Every stage uses it; stages differ only in their targets (computed once, up front) and their loss.
Features stay on the device; each head draws its own batches by random permutation of its own
training rows (no DataLoader). Each head's gradient is that of its own mean batch loss, from the
loss's closed-form gradient (one matmul, no autograd graph), so each head follows exactly the
trajectory it would follow alone. ``torch.optim.SGD`` applies momentum and weight decay; lr × gamma
after every epoch (``ExponentialLR``).
Metrics are synced to the host once per epoch. Training accuracy is the running accuracy of the
batch logits seen during the epoch (as the reference computes it), which costs no extra pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from models.heads import head_logits, shared_logits

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (loss, ∂loss/∂logits)
Progress = Callable[[Iterable[int]], Iterable[int]]


@dataclasses.dataclass
class HeadProblem:
    """H heads of one stage on shared features. Index tensors select rows of ``features``."""

    features: torch.Tensor  # (N_all, D) every training row of the dataset
    test_features: torch.Tensor  # (M, D)
    test_labels: torch.Tensor  # (M,)
    train_index: torch.Tensor  # (H, N) rows each head trains on
    targets: torch.Tensor  # (H, N, K) aligned with train_index
    true_labels: torch.Tensor  # (H, N) true labels of those rows
    noisy_labels: torch.Tensor  # (H, N) the labels the teacher saw
    init: torch.Tensor  # (H, K, D)
    batch_seeds: list[int]  # one permutation stream per head
    loss: LossFn
    val_index: torch.Tensor | None = None  # (H, V) held-out rows of the noisy training set
    val_labels: torch.Tensor | None = None  # (H, V) their noisy labels

    @property
    def num_heads(self) -> int:
        return int(self.train_index.shape[0])


@dataclasses.dataclass(frozen=True)
class SGDSettings:
    lr: float
    wd: float
    epochs: int
    batch_size: int
    gamma: float
    momentum: float
    select: str  # "test" or "val": which accuracy picks the best epoch
    eval_batch: int = 200


@dataclasses.dataclass
class HeadResult:
    best_weights: torch.Tensor  # (K, D) on the CPU
    last_weights: torch.Tensor  # (K, D) on the CPU
    best_epoch: int  # 1-based
    history: list[dict[str, float]]
    iterations: int | None = None  # exact solver only

    def metrics(self) -> dict[str, float]:
        best, last = self.history[self.best_epoch - 1], self.history[-1]
        metrics = {
            "train_acc": max(row["train_acc_true"] for row in self.history),
            "test_acc": best["test_acc"],
            "final_acc": last["test_acc"],
            "best_epoch": self.best_epoch,
            "epochs": len(self.history),
        }
        if "val_acc" in best:
            metrics["val_acc"] = best["val_acc"]
        if self.iterations is not None:
            metrics["iterations"] = self.iterations
        return metrics


@torch.no_grad()
def evaluate(weights: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, chunk: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy (%) of every head on shared rows: (H,), (H,) on the device.

    ``labels`` is (M,) for rows shared by all heads, or (H, M) when each head has its own rows,
    in which case ``features`` is (H, M, D).
    """
    heads, total = weights.shape[0], labels.shape[-1]
    loss = torch.zeros(heads, device=weights.device, dtype=torch.float64)
    correct = torch.zeros(heads, device=weights.device, dtype=torch.float64)
    for start in range(0, total, chunk):
        if labels.ndim == 1:
            logits = shared_logits(weights, features[start:start + chunk])
            target = labels[start:start + chunk].expand(heads, -1)
        else:
            logits = head_logits(weights, features[:, start:start + chunk])
            target = labels[:, start:start + chunk]
        loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(dim=1).double()
        correct += (logits.argmax(dim=-1) == target).sum(dim=1).double()
    return loss / max(total, 1), 100.0 * correct / max(total, 1)


def train_sgd(problem: HeadProblem, settings: SGDSettings, progress: Progress | None = None) -> list[HeadResult]:
    """Train every head for ``settings.epochs`` epochs; return each head's best and last weights and history."""
    device = problem.features.device
    heads, n = problem.train_index.shape
    weights = problem.init.detach().clone().to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([weights], lr=settings.lr, momentum=settings.momentum, weight_decay=settings.wd)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma)
    generators = [torch.Generator().manual_seed(seed) for seed in problem.batch_seeds]
    val_features = problem.features[problem.val_index] if problem.val_index is not None else None
    best_score = torch.full((heads,), -math.inf)
    best_weights = weights.detach().clone()
    best_epoch = [0] * heads
    histories: list[list[dict[str, float]]] = [[] for _ in range(heads)]
    size = settings.batch_size
    both_labels = torch.stack([problem.true_labels, problem.noisy_labels])
    epochs = range(1, settings.epochs + 1)
    for epoch in progress(epochs) if progress else epochs:
        lr = scheduler.get_last_lr()[0]
        perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        rows = torch.gather(problem.train_index, 1, perm)
        targets = torch.gather(problem.targets, 1, perm[..., None].expand(-1, -1, problem.targets.shape[-1]))
        labels = torch.gather(both_labels, 2, perm.expand(2, -1, -1))  # (2, H, N): true, noisy
        loss_sum = torch.zeros(heads, device=device, dtype=torch.float64)
        correct = torch.zeros(2, heads, device=device, dtype=torch.int64)
        with torch.no_grad():
            for start in range(0, n, size):
                batch_rows = rows[:, start:start + size]
                inputs = problem.features.index_select(0, batch_rows.flatten()).view(*batch_rows.shape, -1)  # (H, B, D)
                logits = head_logits(weights, inputs)
                loss, grad = problem.loss(logits, targets[:, start:start + size])
                count = loss.shape[1]
                weights.grad = torch.bmm(grad.transpose(1, 2), inputs).div_(count)  # ∂(mean loss)/∂W per head
                optimizer.step()
                loss_sum += loss.sum(dim=1, dtype=torch.float64)
                correct += (logits.argmax(dim=-1) == labels[:, :, start:start + size]).sum(dim=2)
        scheduler.step()
        detached = weights.detach()
        test_loss, test_acc = evaluate(detached, problem.test_features, problem.test_labels, settings.eval_batch)
        accuracy = 100.0 * correct.double() / n
        columns = [loss_sum / n, accuracy[0], accuracy[1], test_loss, test_acc]
        names = ["train_loss", "train_acc_true", "train_acc_noisy", "test_loss", "test_acc"]
        if val_features is not None:
            val_loss, val_acc = evaluate(detached, val_features, problem.val_labels, settings.eval_batch)
            columns += [val_loss, val_acc]
            names += ["val_loss", "val_acc"]
        table = torch.stack(columns, dim=1).cpu().tolist()  # the one host sync of the epoch
        score = torch.tensor([row[names.index(f"{settings.select}_acc")] for row in table])
        improved = score > best_score
        if improved.any():
            mask = improved.to(device)
            best_weights[mask] = detached[mask]
            best_score = torch.where(improved, score, best_score)
            for h in torch.nonzero(improved).flatten().tolist():
                best_epoch[h] = epoch
        for h in range(heads):
            histories[h].append({"epoch": epoch, "lr": lr, **dict(zip(names, table[h]))})
    last = weights.detach().cpu()
    return [HeadResult(best_weights[h].cpu(), last[h].clone(), best_epoch[h], histories[h]) for h in range(heads)]
