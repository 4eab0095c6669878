"""Per-sample losses of the linear heads and their gradients with respect to the logits, as pure functions.

Shapes: ``logits`` (..., K), ``targets`` (..., K). Each function returns ``(loss, grad)`` with
``loss`` (...,), one value per sample, and ``grad = ∂loss/∂logits`` (..., K), so a stack of heads
(H, B, K) gets (H, B) and (H, B, K). The training engine and the exact solver both use the
closed-form gradients; the tests check them against autograd and float64 formulas.
"""

from __future__ import annotations

import torch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ℓ(z, t) = −Σ_k t_k log p_k with p = softmax(z);  ∂ℓ/∂z = p·Σ_k t_k − t.

    With one-hot targets this is the cross-entropy on hard labels (the teacher); with the previous
    model's softmax outputs it is the students' distillation loss.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    loss = -(targets * log_p).sum(dim=-1)
    grad = torch.exp(log_p) * targets.sum(dim=-1, keepdim=True) - targets
    return loss, grad


def partial_label_gce(logits: torch.Tensor, weights: torch.Tensor, q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised cross-entropy averaged over a candidate set: ℓ(z, w) = Σ_k w_k (1 − p_k^q) / q.

    ``weights`` holds 1/|S| on the candidate classes S and 0 elsewhere (the PLL student's target
    set: the teacher's top-k classes), ``p = softmax(z)`` and ``0 < q ≤ 1`` (the paper uses 0.7).
    ∂ℓ/∂z_m = −w_m p_m^q + p_m Σ_k w_k p_k^q. As q → 0, ℓ tends to the cross-entropy averaged over S.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    weighted = weights * torch.exp(q * log_p)
    total = weighted.sum(dim=-1, keepdim=True)
    loss = (weights.sum(dim=-1) - total.squeeze(-1)) / q
    grad = torch.exp(log_p) * total - weighted
    return loss, grad
