"""HeadSGD takes torch.optim.SGD's steps, and its lr decay is ExponentialLR's, bit for bit."""

from __future__ import annotations

import torch

from training.sgd import HeadSGD


def test_head_sgd_follows_torch_sgd_with_momentum_weight_decay_and_a_scheduler():
    g = torch.Generator().manual_seed(0)
    heads, k, d, b = 2, 5, 7, 4
    start = torch.randn(heads, k, d, generator=g, dtype=torch.float64)
    ours_w = start.clone()
    theirs_w = start.clone().requires_grad_(True)
    ours = HeadSGD(ours_w, lr=0.3, momentum=0.9, weight_decay=0.05)
    theirs = torch.optim.SGD([theirs_w], lr=0.3, momentum=0.9, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.ExponentialLR(theirs, gamma=0.5)
    for epoch in range(3):
        for _ in range(4):
            grad = torch.randn(heads, b, k, generator=g, dtype=torch.float64)
            inputs = torch.randn(heads, b, d, generator=g, dtype=torch.float64)
            ours.step(grad.transpose(1, 2), inputs)
            theirs_w.grad = grad.transpose(1, 2) @ inputs / b
            theirs.step()
        ours.decay(0.5)
        schedule.step()
        torch.testing.assert_close(ours_w, theirs_w.detach(), rtol=1e-12, atol=1e-12)
    assert ours.lr == theirs.param_groups[0]["lr"] == 0.3 * 0.5 ** 3
    torch.testing.assert_close(ours.velocity, theirs.state[theirs_w]["momentum_buffer"])


def test_lr_decay_is_exponential_lrs_bit_for_bit_over_200_epochs():
    weights = torch.zeros(1, 2, 3)
    ours = HeadSGD(weights, lr=0.1, momentum=0.9, weight_decay=5e-4)
    theirs = torch.optim.SGD([torch.zeros(2, 3, requires_grad=True)], lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.ExponentialLR(theirs, gamma=0.98)
    for _ in range(200):
        theirs.step()
        schedule.step()
        ours.decay(0.98)
        assert ours.lr == theirs.param_groups[0]["lr"]


def test_head_sgd_without_momentum_or_weight_decay_is_plain_gradient_descent():
    w = torch.ones(1, 2, 3, dtype=torch.float64)
    opt = HeadSGD(w, lr=0.1, momentum=0.0, weight_decay=0.0)
    grad_t, inputs = torch.ones(1, 2, 4, dtype=torch.float64), torch.full((1, 4, 3), 2.0, dtype=torch.float64)
    opt.step(grad_t, inputs)
    opt.step(grad_t, inputs)
    torch.testing.assert_close(w, torch.full_like(w, 1.0 - 2 * 0.1 * 2.0))
