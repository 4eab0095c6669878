"""SGD with momentum and weight decay for a stack of linear heads, in three in-place ops per step.

The update is ``torch.optim.SGD``'s (dampening 0, no Nesterov):

    v ← m·v + (∂L/∂W + wd·W),    W ← W − lr·v,

with v starting at zero (SGD's first step sets v to the gradient, which is the same thing). For a
linear head the mean-loss gradient of a batch is a product, ∂L/∂W = gᵀ·x / B with g = ∂loss/∂logits
(H, B, K) and x the inputs (H, B, D), so ``step`` takes the two factors and lets the matmul
accumulate straight into v: three in-place ops on preallocated tensors, where ``SGD.step`` runs a
dozen and first needs the gradient materialised. :meth:`decay` multiplies the learning rate by
gamma, as ``torch.optim.lr_scheduler.ExponentialLR.step`` does (the same float product, so the
same bits). It is deliberately not a ``torch.optim.Optimizer``: that base class wraps every step
in hook bookkeeping and imports ``torch._dynamo`` (most of a second) on first use, for features
the engine does not use. ``tests/test_sgd.py`` holds it to ``SGD.step`` and ``ExponentialLR``.
"""

from __future__ import annotations

import torch


class HeadSGD:
    def __init__(self, weights: torch.Tensor, lr: float, momentum: float, weight_decay: float):
        if weights.ndim != 3 or weights.requires_grad:
            raise ValueError("HeadSGD updates stacked head weights (H, K, D) in place, outside autograd; "
                             f"got shape {tuple(weights.shape)}, requires_grad={weights.requires_grad}")
        self.weights, self.velocity = weights, torch.zeros_like(weights)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay

    def step(self, grad_t: torch.Tensor, inputs: torch.Tensor) -> None:
        """One update from the batch gradient ``grad_t @ inputs / B``: grad_t (H, K, B), inputs (H, B, D)."""
        self.velocity.baddbmm_(grad_t, inputs, beta=self.momentum, alpha=1.0 / inputs.shape[1])
        if self.weight_decay:
            self.velocity.add_(self.weights, alpha=self.weight_decay)
        self.weights.add_(self.velocity, alpha=-self.lr)

    def decay(self, gamma: float) -> None:
        """The end of an epoch: lr ← lr · gamma."""
        self.lr = self.lr * gamma
