"""Losses and their gradients against float64 formulas written out by hand."""

from __future__ import annotations

import numpy as np
import torch

from models.losses import PartialLabelGCE, SoftCrossEntropy

soft_cross_entropy = SoftCrossEntropy()


def softmax64(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def case(seed=0, n=7, k=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, k))
    soft = softmax64(rng.normal(size=(n, k)))
    return logits, soft


def autograd_of(loss_fn, logits, targets):
    """The gradient autograd finds for the loss value alone, to check the closed form against."""
    z = torch.tensor(logits, requires_grad=True)
    loss_fn(z, torch.tensor(targets))[0].sum().backward()
    return z.grad.numpy()


def test_soft_cross_entropy_value_and_gradient():
    logits, targets = case()
    loss, grad = soft_cross_entropy(torch.tensor(logits), torch.tensor(targets))
    p = softmax64(logits)
    np.testing.assert_allclose(loss.numpy(), -(targets * np.log(p)).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), p - targets, atol=1e-12)  # targets sum to 1
    np.testing.assert_allclose(autograd_of(soft_cross_entropy, logits, targets), p - targets, atol=1e-12)


def test_gradient_writes_into_a_given_buffer():
    logits, targets = case(4)
    z, t = torch.tensor(logits), torch.tensor(targets)
    for loss in (soft_cross_entropy, PartialLabelGCE(q=0.7)):
        buffer = torch.full_like(z, float("nan"))
        returned = loss.gradient(z, t, out=buffer)
        assert returned.data_ptr() == buffer.data_ptr()
        np.testing.assert_allclose(buffer.numpy(), loss(z, t)[1].numpy(), atol=1e-15)


def test_soft_cross_entropy_with_one_hot_is_cross_entropy():
    logits, _ = case(1)
    labels = np.array([0, 1, 2, 3, 4, 0, 1])
    one_hot = np.eye(5)[labels]
    ours, _ = soft_cross_entropy(torch.tensor(logits), torch.tensor(one_hot))
    reference = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels), reduction="none")
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-12)


def test_partial_label_gce_value_and_gradient():
    logits, _ = case(2)
    n, k = logits.shape
    q = 0.7
    candidates = np.argsort(-logits, axis=1)[:, :2]
    weights = np.zeros((n, k))
    np.put_along_axis(weights, candidates, 0.5, axis=1)
    loss, ours = PartialLabelGCE(q)(torch.tensor(logits), torch.tensor(weights))
    p = softmax64(logits)
    expected = np.array([np.mean([(1 - p[i, j] ** q) / q for j in candidates[i]]) for i in range(n)])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    # d/dz_m of (1 − p_j^q)/q = −p_j^q (δ_jm − p_m)
    grad = np.zeros_like(logits)
    for i in range(n):
        for j in candidates[i]:
            grad[i] += 0.5 * -(p[i, j] ** q) * (np.eye(k)[j] - p[i])
    np.testing.assert_allclose(ours.numpy(), grad, atol=1e-12)
    np.testing.assert_allclose(autograd_of(PartialLabelGCE(q), logits, weights), grad, atol=1e-12)


def test_gce_tends_to_cross_entropy_as_q_vanishes():
    logits, _ = case(3)
    one_hot = np.eye(5)[np.arange(7) % 5]
    gce, _ = PartialLabelGCE(1e-6)(torch.tensor(logits), torch.tensor(one_hot))
    ce, _ = soft_cross_entropy(torch.tensor(logits), torch.tensor(one_hot))
    np.testing.assert_allclose(gce.numpy(), ce.numpy(), rtol=1e-4)


def test_losses_broadcast_over_a_stack_of_heads():
    logits = torch.randn(3, 4, 6, dtype=torch.float64)
    targets = torch.softmax(torch.randn(3, 4, 6, dtype=torch.float64), -1)
    stacked, grad = soft_cross_entropy(logits, targets)
    assert stacked.shape == (3, 4) and grad.shape == (3, 4, 6)
    np.testing.assert_allclose(stacked[1].numpy(), soft_cross_entropy(logits[1], targets[1])[0].numpy())
