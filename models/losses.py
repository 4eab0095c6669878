"""Per-sample losses of the linear heads and their closed-form gradients with respect to the logits.

Shapes: ``logits`` (..., K) and ``targets`` (..., K), where every target row is a probability
vector (one-hot labels, a model's softmax outputs, or uniform weights on a candidate set).
``value`` gives one loss per sample (...,); ``gradient`` gives ∂loss/∂logits (..., K) and can write
it into a preallocated buffer, which the training engine reuses at every step; calling a loss
returns both. A stack of heads (H, B, K) gets (H, B) and (H, B, K). The training engine and the
exact solver both use these closed forms (no autograd); the tests check them against autograd
and float64 formulas.
"""

from __future__ import annotations

import dataclasses

import torch


class Loss:
    def value(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(logits, targets), self.gradient(logits, targets)


@dataclasses.dataclass(frozen=True)
class SoftCrossEntropy(Loss):
    """ℓ(z, t) = −Σ_k t_k log p_k with p = softmax(z);  ∂ℓ/∂z = p − t for a probability vector t.

    With one-hot targets this is the cross-entropy on hard labels (the teacher); with the previous
    model's softmax outputs it is the students' distillation loss.
    """

    def value(self, logits, targets):
        return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        return out.sub_(targets)


@dataclasses.dataclass(frozen=True)
class PartialLabelGCE(Loss):
    """Generalised cross-entropy averaged over a candidate set: ℓ(z, w) = Σ_k w_k (1 − p_k^q) / q.

    ``w`` holds 1/|S| on the candidate classes S and 0 elsewhere (the PLL student's target set:
    the teacher's top-k classes), ``p = softmax(z)`` and ``0 < q ≤ 1`` (the paper uses 0.7).
    ∂ℓ/∂z_m = −w_m p_m^q + p_m Σ_k w_k p_k^q. As q → 0, ℓ tends to the cross-entropy averaged over S.
    """

    q: float

    def value(self, logits, targets):
        powered = torch.exp(self.q * torch.log_softmax(logits, dim=-1))
        return (1.0 - (targets * powered).sum(dim=-1)) / self.q

    def gradient(self, logits, targets, out=None):
        log_p = torch.log_softmax(logits, dim=-1)
        weighted = torch.exp(self.q * log_p).mul_(targets)
        total = weighted.sum(dim=-1, keepdim=True)
        out = torch.exp(log_p, out=out) if out is not None else torch.exp(log_p)
        return out.mul_(total).sub_(weighted)
