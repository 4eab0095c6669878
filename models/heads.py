"""Linear softmax heads without bias, kept as a stack: weights (H, K, D) for H heads trained together."""

from __future__ import annotations

import math

import torch


def init_head(num_classes: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(K, D) weights drawn as ``torch.nn.Linear`` does: U(−1/√D, 1/√D), from an explicit generator."""
    bound = 1.0 / math.sqrt(dim)
    return (torch.rand(num_classes, dim, generator=generator, dtype=torch.float32) * 2.0 - 1.0) * bound


def head_logits(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Logits of each head on its own rows: weights (H, K, D), features (H, B, D) → (H, B, K)."""
    return torch.bmm(features, weights.transpose(1, 2))


def shared_logits(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Logits of every head on the same rows: weights (H, K, D), features (B, D) → (H, B, K)."""
    return torch.einsum("bd,hkd->hbk", features, weights)
