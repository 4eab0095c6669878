"""The SGD engine's bookkeeping: block sizes change no trajectory, and the epoch metrics are the batches' own."""

from __future__ import annotations

import torch

from models.heads import init_head
from models.losses import SoftCrossEntropy
from training import engine
from training.engine import HeadProblem, SGDSettings, train_sgd
from training.randomness import IndependentOrder


def problem(heads=2, n=203, m=50, d=6, k=4):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + m, d, generator=g), torch.randint(0, k, (n + m,), generator=g)
    noisy = torch.where(torch.rand(n, generator=g) < 0.3, torch.randint(0, k, (n,), generator=g), y[:n])
    rows = torch.stack([torch.randperm(n, generator=g)[: n - 3] for _ in range(heads)])  # heads see different rows
    return HeadProblem(
        features=x[:n],
        test_features=x[n:],
        test_labels=y[n:],
        train_index=rows,
        targets=torch.nn.functional.one_hot(noisy[rows], k).float(),
        true_labels=y[rows],
        noisy_labels=noisy[rows],
        init=torch.stack([init_head(k, d, torch.Generator().manual_seed(h)) for h in range(heads)]),
        orders=[IndependentOrder(torch.Generator().manual_seed(h)) for h in range(heads)],
        loss=SoftCrossEntropy(),
    )


SETTINGS = SGDSettings(lr=0.1, wd=1e-3, epochs=3, batch_size=16, gamma=0.9, momentum=0.9, select="test")


def test_block_size_changes_no_trajectory(monkeypatch):
    whole = train_sgd(problem(), SETTINGS)
    monkeypatch.setattr(engine, "BLOCK_ELEMENTS", 3 * 2 * 16 * 4)  # three batches per block
    blocked = train_sgd(problem(), SETTINGS)
    for a, b in zip(whole, blocked):
        assert torch.equal(a.last_weights, b.last_weights)
        for row_a, row_b in zip(a.history, b.history):
            assert row_a.keys() == row_b.keys()
            for name in row_a:
                assert abs(row_a[name] - row_b[name]) <= 1e-9 * max(1.0, abs(row_a[name])), name


def test_epoch_metrics_are_those_of_the_batches_seen():
    """Replay epoch 1 of head 0 by hand, with torch.optim.SGD, and compare its loss, accuracies and weights."""
    p = problem(heads=1)
    result = train_sgd(p, SGDSettings(**{**SETTINGS.__dict__, "epochs": 1}))[0]
    weights = p.init[0].clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weights], lr=SETTINGS.lr, momentum=SETTINGS.momentum, weight_decay=SETTINGS.wd)
    order = torch.randperm(p.train_index.shape[1], generator=torch.Generator().manual_seed(0))  # head 0's stream
    loss_sum, right_true, right_noisy = 0.0, 0, 0
    for batch in order.split(SETTINGS.batch_size):
        logits = p.features[p.train_index[0, batch]] @ weights.T
        loss = torch.nn.functional.cross_entropy(logits, p.targets[0, batch].argmax(dim=1), reduction="sum")
        optimizer.zero_grad()
        (loss / len(batch)).backward()
        optimizer.step()
        loss_sum += loss.item()
        right_true += (logits.argmax(dim=1) == p.true_labels[0, batch]).sum().item()
        right_noisy += (logits.argmax(dim=1) == p.noisy_labels[0, batch]).sum().item()
    n = len(order)
    row = result.history[0]
    assert abs(row["train_loss"] - loss_sum / n) < 1e-5
    assert row["train_acc_true"] == 100.0 * right_true / n
    assert row["train_acc_noisy"] == 100.0 * right_noisy / n
    torch.testing.assert_close(result.last_weights, weights.detach(), rtol=1e-5, atol=1e-6)
