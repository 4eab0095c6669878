"""HeadSGD takes torch.optim.SGD's steps and torch's lr schedulers."""

from __future__ import annotations

import copy

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
    schedules = [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5) for opt in (ours, theirs)]
    for epoch in range(3):
        for _ in range(4):
            grad = torch.randn(heads, b, k, generator=g, dtype=torch.float64)
            inputs = torch.randn(heads, b, d, generator=g, dtype=torch.float64)
            ours.step(grad.transpose(1, 2), inputs)
            theirs_w.grad = grad.transpose(1, 2) @ inputs / b
            theirs.step()
        for schedule in schedules:
            schedule.step()
        torch.testing.assert_close(ours_w, theirs_w.detach(), rtol=1e-12, atol=1e-12)
    assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"] == 0.3 * 0.5**3
    torch.testing.assert_close(ours.state[ours_w]["momentum_buffer"], theirs.state[theirs_w]["momentum_buffer"])


def test_head_sgd_without_momentum_or_weight_decay_is_plain_gradient_descent():
    w = torch.ones(1, 2, 3, dtype=torch.float64)
    opt = HeadSGD(w, lr=0.1, momentum=0.0, weight_decay=0.0)
    grad_t, inputs = torch.ones(1, 2, 4, dtype=torch.float64), torch.full((1, 4, 3), 2.0, dtype=torch.float64)
    opt.step(grad_t, inputs)
    opt.step(grad_t, inputs)
    torch.testing.assert_close(w, torch.full_like(w, 1.0 - 2 * 0.1 * 2.0))


def test_head_sgd_resumes_from_a_loaded_state():
    g = torch.Generator().manual_seed(1)
    grad_t, inputs = torch.randn(1, 3, 4, generator=g), torch.randn(1, 4, 5, generator=g)
    first = HeadSGD(torch.zeros(1, 3, 5), lr=0.1, momentum=0.9, weight_decay=0.01)
    first.step(grad_t, inputs)
    second = HeadSGD(first.weights.clone(), lr=0.1, momentum=0.9, weight_decay=0.01)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as from a file: no shared buffer
    first.step(grad_t, inputs)
    second.step(grad_t, inputs)
    torch.testing.assert_close(second.weights, first.weights, rtol=0, atol=0)
