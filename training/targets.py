"""Stage targets, computed once up front on the training inputs (samples as rows).

- teacher: one-hot noisy labels;
- student t: softmax(W_{t−1} x) of the previous round's checkpoint;
- PLL student: 1/k on each of the teacher's top-k classes (the candidate set), 0 elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def one_hot_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) integer labels → (N, K) float one-hot rows."""
    return F.one_hot(labels, num_classes).float()


@torch.no_grad()
def soft_targets(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """softmax(x Wᵀ) for features (N, D) and weights (K, D): (N, K) rows summing to 1."""
    return torch.softmax(features @ weights.T, dim=-1)


@torch.no_grad()
def partial_label_targets(weights: torch.Tensor, features: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K): 1/k on the k highest-scoring classes of x Wᵀ for each row, 0 elsewhere."""
    logits = features @ weights.T
    top = logits.topk(k, dim=-1).indices
    return torch.zeros_like(logits).scatter_(1, top, 1.0 / k)
