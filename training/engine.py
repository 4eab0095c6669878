"""The one training engine: a stack of H linear heads trained together by SGD on in-memory features.

Every stage uses it; stages differ only in their targets (computed once, up front) and their loss.
Features stay on the device; each head's batches are slices of a permutation of its own training
rows that its :mod:`training.randomness` order draws every epoch (no DataLoader). Each head's
gradient is that of its own mean batch loss, from the
loss's closed-form gradient (no autograd graph), so each head follows exactly the trajectory it
would follow alone. The update is ``torch.optim.SGD``'s (momentum, weight decay), applied by
``training.sgd.HeadSGD`` in three in-place ops (a test holds it to ``SGD.step``); torch's
``ExponentialLR`` multiplies its lr by gamma after every epoch. Every step reuses preallocated
buffers. Training loss and accuracy are those of the batch logits seen during the epoch (as the
reference computes them), kept for a block of batches and reduced in one vectorised pass when the
block ends; metrics reach the host once per epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Iterable

import torch

from models.heads import head_logits, shared_logits
from models.losses import Loss
from training.randomness import BatchOrder
from training.sgd import HeadSGD
from utils.errors import UserError

Progress = Callable[[Iterable[int]], Iterable[int]]


@dataclasses.dataclass
class HeadProblem:
    """H heads of one stage on shared features. Index tensors select rows of ``features``."""

    features: torch.Tensor  # (N_all, D) every training row of the dataset
    test_features: torch.Tensor  # (M, D)
    test_labels: torch.Tensor  # (M,)
    train_index: torch.Tensor  # (H, N) rows each head trains on
    targets: torch.Tensor  # (H, N, K) probability vectors aligned with train_index
    true_labels: torch.Tensor  # (H, N) true labels of those rows
    noisy_labels: torch.Tensor  # (H, N) the labels the teacher saw
    init: torch.Tensor  # (H, K, D)
    orders: list[BatchOrder]  # one batch-order stream per head
    loss: Loss
    val_index: torch.Tensor | None = None  # (H, V) held-out rows of the noisy training set
    val_labels: torch.Tensor | None = None  # (H, V) their noisy labels

    def __post_init__(self):
        mass = self.targets.sum(dim=-1)
        if not torch.allclose(mass, torch.ones_like(mass), atol=1e-4):
            raise ValueError("target rows must be probability vectors")

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
    eval_batch: int = 4096  # rows per evaluation matmul


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
def evaluate(
    weights: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, chunk: int
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
            logits = shared_logits(weights, features[start : start + chunk])
            target = labels[start : start + chunk].expand(heads, -1)
        else:
            logits = head_logits(weights, features[:, start : start + chunk])
            target = labels[:, start : start + chunk]
        loss -= torch.log_softmax(logits, dim=-1).gather(-1, target[..., None]).sum(dim=(1, 2), dtype=torch.float64)
        correct += (logits.argmax(dim=-1) == target).sum(dim=1).double()
    return loss / max(total, 1), 100.0 * correct / max(total, 1)


BLOCK_ELEMENTS = 1 << 20  # floats per logits (and targets) buffer: 4 MiB each, whatever the grid's size


@dataclasses.dataclass
class _Buffers:
    """What the batches of one block shape reuse every epoch."""

    inputs: torch.Tensor  # (H, size, D)
    grad: torch.Tensor  # (H, size, K)
    logits: torch.Tensor  # (count, H, size, K): every batch's logits, kept until the block ends
    targets: torch.Tensor  # (count, H, size, K)


@dataclasses.dataclass
class _Block:
    """``count`` consecutive batches of ``size`` rows starting at row ``start`` of the epoch's order.

    Index tensors are laid out batch-major, (count, H·size), so that each batch's rows for all
    heads are one contiguous slice. The block keeps the logits and targets of its batches: their
    training loss and accuracy are computed in one vectorised pass when the block ends.
    """

    start: int
    count: int
    size: int
    buffers: _Buffers

    def batch_major(self, per_head: torch.Tensor) -> torch.Tensor:
        """(..., H, N) in epoch order → (..., count, H, size): this block's batches."""
        part = per_head[..., self.start : self.start + self.count * self.size]
        return part.unflatten(-1, (self.count, self.size)).movedim(-2, -3).contiguous()


def _blocks(n: int, size: int, heads: int, dim: int, classes: int, device) -> list[_Block]:
    """Cut an epoch of ``n`` rows into blocks of whole batches (and a last, short batch), sharing buffers."""
    full, rest = divmod(n, size)
    per_block = max(1, BLOCK_ELEMENTS // (heads * size * classes))
    shapes = [(start, min(per_block, full - start), size) for start in range(0, full, per_block)]
    shapes += [(full, 1, rest)] if rest else []
    empty = functools.partial(torch.empty, device=device)
    buffers: dict[tuple[int, int], _Buffers] = {}
    blocks = []
    for first_batch, count, rows in shapes:
        if (count, rows) not in buffers:
            buffers[count, rows] = _Buffers(
                empty(heads, rows, dim),
                empty(heads, rows, classes),
                empty(count, heads, rows, classes),
                empty(count, heads, rows, classes),
            )
        blocks.append(_Block(first_batch * size, count, rows, buffers[count, rows]))
    return blocks


def _train_epoch(
    problem: HeadProblem, blocks: list[_Block], optimizer: HeadSGD, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over every head's rows in the order ``perm`` (H, N); returns the summed batch losses (H,)
    and the numbers of batch predictions that match the true and the noisy labels (2, H)."""
    heads, n = perm.shape
    classes, dim = problem.targets.shape[-1], problem.features.shape[-1]
    weights_t = optimizer.weights.transpose(1, 2)
    rows = torch.gather(problem.train_index, 1, perm)
    target_rows = perm + (torch.arange(heads, device=perm.device) * n)[:, None]  # rows of the flattened targets
    labels = torch.gather(torch.stack([problem.true_labels, problem.noisy_labels]), 2, perm.expand(2, -1, -1))
    targets = problem.targets.reshape(heads * n, classes)
    loss_sum = torch.zeros(heads, device=perm.device, dtype=torch.float64)
    correct = torch.zeros(2, heads, device=perm.device, dtype=torch.int64)
    for block in blocks:
        buf = block.buffers
        torch.index_select(targets, 0, block.batch_major(target_rows).flatten(), out=buf.targets.view(-1, classes))
        inputs_flat, grad_t = buf.inputs.view(-1, dim), buf.grad.transpose(1, 2)
        batches = zip(block.batch_major(rows).flatten(1).unbind(0), buf.logits.unbind(0), buf.targets.unbind(0))
        for batch_rows, logits, batch_targets in batches:
            torch.index_select(problem.features, 0, batch_rows, out=inputs_flat)
            torch.bmm(buf.inputs, weights_t, out=logits)
            problem.loss.gradient(logits, batch_targets, out=buf.grad)
            optimizer.step(grad_t, buf.inputs)
        loss_sum += problem.loss.value(buf.logits, buf.targets).sum(dim=(0, 2), dtype=torch.float64)
        correct += (buf.logits.argmax(dim=-1) == block.batch_major(labels)).sum(dim=(1, 3))
    return loss_sum, correct


def _check_finite(weights: torch.Tensor, histories: list[list[dict[str, float]]]) -> None:
    """A head whose weights or losses (training, test, validation) left the finite numbers diverged: an error,
    never a published run."""
    finite = torch.isfinite(weights).flatten(1).all(dim=1).tolist()
    for head, (ok, history) in enumerate(zip(finite, histories)):
        losses = lambda row: [value for key, value in row.items() if key.endswith("_loss")]  # noqa: E731
        epoch = next((row["epoch"] for row in history if not all(map(math.isfinite, losses(row)))), None)
        if not ok or epoch is not None:
            when = f" at epoch {epoch}" if epoch is not None else ""
            raise UserError(
                f"training diverged{when} (head {head + 1} of {len(histories)}: NaN or infinite loss or weights); "
                f"lower --lr, or rescale the features"
            )


def train_sgd(
    problem: HeadProblem,
    settings: SGDSettings,
    progress: Progress | None = None,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[HeadResult]:
    """Train every head for ``settings.epochs`` epochs; return each head's best and last weights and history.

    ``on_epoch`` receives every epoch's log row of each head as soon as it is known.
    """
    device = problem.features.device
    heads, n = problem.train_index.shape
    weights = problem.init.detach().clone().to(device)
    optimizer = HeadSGD(weights, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.wd)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma)
    orders = [order.fresh() for order in problem.orders]
    blocks = _blocks(n, settings.batch_size, heads, problem.features.shape[-1], problem.targets.shape[-1], device)
    val_features = problem.features[problem.val_index] if problem.val_index is not None else None
    best_score = torch.full((heads,), -math.inf)
    best_weights = weights.clone()
    best_epoch = [0] * heads
    histories: list[list[dict[str, float]]] = [[] for _ in range(heads)]
    epochs = range(1, settings.epochs + 1)
    for epoch in progress(epochs) if progress else epochs:
        lr = optimizer.param_groups[0]["lr"]
        perm = torch.stack([order.permutation(n) for order in orders]).to(device)
        loss_sum, correct = _train_epoch(problem, blocks, optimizer, perm)
        scheduler.step()
        test_loss, test_acc = evaluate(weights, problem.test_features, problem.test_labels, settings.eval_batch)
        accuracy = 100.0 * correct.double() / n
        columns = [loss_sum / n, accuracy[0], accuracy[1], test_loss, test_acc]
        names = ["train_loss", "train_acc_true", "train_acc_noisy", "test_loss", "test_acc"]
        if val_features is not None:
            val_loss, val_acc = evaluate(weights, val_features, problem.val_labels, settings.eval_batch)
            columns += [val_loss, val_acc]
            names += ["val_loss", "val_acc"]
        table = torch.stack(columns, dim=1).cpu().tolist()  # the one host sync of the epoch
        score = torch.tensor([row[names.index(f"{settings.select}_acc")] for row in table])
        improved = score > best_score
        if improved.any():
            mask = improved.to(device)
            best_weights[mask] = weights[mask]
            best_score = torch.where(improved, score, best_score)
            for h in torch.nonzero(improved).flatten().tolist():
                best_epoch[h] = epoch
        rows = [{"epoch": epoch, "lr": lr, **dict(zip(names, table[h]))} for h in range(heads)]
        for history, row in zip(histories, rows):
            history.append(row)
        if on_epoch is not None:
            on_epoch(rows)
    _check_finite(weights, histories)
    last = weights.cpu()
    return [HeadResult(best_weights[h].cpu(), last[h].clone(), best_epoch[h], histories[h]) for h in range(heads)]
