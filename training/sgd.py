"""SGD with momentum and weight decay for a stack of linear heads, as a ``torch.optim.Optimizer``.

The update is ``torch.optim.SGD``'s (dampening 0, no Nesterov):

    v ← m·v + (∂L/∂W + wd·W),    W ← W − lr·v,

with v starting at zero (SGD's first step sets v to the gradient, which is the same thing). For a
linear head the mean-loss gradient of a batch is a product, ∂L/∂W = gᵀ·x / B with g = ∂loss/∂logits
(H, B, K) and x the inputs (H, B, D), so ``step`` takes the two factors and lets the matmul
accumulate straight into v: three in-place ops on preallocated tensors, where ``SGD.step`` runs a
dozen and first needs the gradient materialised. Being an ``Optimizer``, it takes torch's lr
schedulers (the engine uses ``ExponentialLR``) and keeps SGD's state layout (``momentum_buffer``).
Two of the base class's costs are left out, because its one parameter group and its hot, differently
shaped ``step`` use neither: ``add_param_group``'s lazy import of ``torch._dynamo`` (most of a second
of every training process's start, sympy included) and the class-wide step wrapper that runs the
step hooks and the profiler label around every call.
"""

from __future__ import annotations

import torch


class HeadSGD(torch.optim.Optimizer):
    def __init__(self, weights: torch.Tensor, lr: float, momentum: float, weight_decay: float):
        if weights.ndim != 3 or weights.requires_grad:
            raise ValueError(
                "HeadSGD updates stacked head weights (H, K, D) in place, outside autograd; "
                f"got shape {tuple(weights.shape)}, requires_grad={weights.requires_grad}"
            )
        super().__init__([weights], {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.state[weights]["momentum_buffer"] = torch.zeros_like(weights)

    def add_param_group(self, param_group: dict) -> None:
        """The base class's, for one group of tensors (defaults filled in), without importing ``torch._dynamo``."""
        param_group["params"] = list(param_group["params"])
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        self.param_groups.append(param_group)

    def _patch_step_function(self) -> None:
        """No step hooks or profiler label around ``step`` (see the module's docstring)."""

    @property
    def weights(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    def step(self, grad_t: torch.Tensor, inputs: torch.Tensor) -> None:  # type: ignore[override]
        """One update from the batch gradient ``grad_t @ inputs / B``: grad_t (H, K, B), inputs (H, B, D)."""
        group = self.param_groups[0]
        weights = group["params"][0]
        velocity = self.state[weights]["momentum_buffer"]  # looked up, so load_state_dict takes effect
        velocity.baddbmm_(grad_t, inputs, beta=group["momentum"], alpha=1.0 / inputs.shape[1])
        if group["weight_decay"]:
            velocity.add_(weights, alpha=group["weight_decay"])
        weights.add_(velocity, alpha=-group["lr"])
