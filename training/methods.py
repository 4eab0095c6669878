"""What each stage learns from: its targets, its loss and the training rows it uses.

- teacher: one-hot noisy labels, cross-entropy;
- student t: the previous round's softmax, soft-target cross-entropy;
- PLL: 1/k on the teacher's top-k classes, generalised cross-entropy (q);
- baselines (``--baselines``), each on the noisy labels of the teacher's draw:
  ``ls`` label smoothing (ε = 0.1); ``boot-soft`` / ``boot-hard`` bootstrapping (β = 0.95 / 0.8, the
  model's own prediction in the target, recomputed every step and treated as a constant);
  ``gce`` generalised cross-entropy (q, as PLL); ``sce`` symmetric cross-entropy (α 0.1, β 1, A −4);
  ``fc-est`` / ``fc-true`` forward correction with the transition matrix estimated from the teacher's
  checkpoint (anchor points) or the one the noise was drawn from; ``cl`` confident learning
  (cleanlab on 5-fold out-of-fold predictions), then cross-entropy on the rows it keeps;
  ``clean`` cross-entropy on the true labels (the upper bound).

Losses and their closed-form gradients are in :mod:`models.losses`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from models.losses import (
    ForwardCorrection,
    GeneralizedCrossEntropy,
    HardBootstrap,
    Loss,
    PartialLabelGCE,
    SoftBootstrap,
    SoftCrossEntropy,
    SymmetricCrossEntropy,
    label_smoothing_targets,
)
from training.config import TrainConfig
from training.targets import one_hot_targets, partial_label_targets, soft_targets

NON_CONVEX = ("pll", "gce", "sce", "boot-hard", "fc-est", "fc-true")  # an exact solve finds a stationary point


@dataclasses.dataclass
class Learned:
    """A head's training rows (indices into the dataset), targets (rows × K), and what the method computed."""

    train_index: np.ndarray
    targets: torch.Tensor
    transition: torch.Tensor | None = None  # forward correction's T (K, K)
    notes: dict = dataclasses.field(default_factory=dict)  # recorded in run.json


def learned(
    config: TrainConfig,
    inputs: torch.Tensor,
    noisy: np.ndarray,
    train_index: np.ndarray,
    true: np.ndarray,
    num_classes: int,
    teacher_weights: torch.Tensor | None,
    clusters,
    cl=None,
) -> Learned:
    """The targets of ``config``'s stage on the training rows ``train_index`` (``inputs`` are their features).

    ``cl`` is a function (rows) → kept mask, for confident learning.
    """
    device = inputs.device
    name = config.stage.name
    onehot = lambda labels: one_hot_targets(torch.as_tensor(labels, device=device), num_classes)  # noqa: E731
    if config.is_teacher or name in ("boot-soft", "boot-hard", "gce", "sce"):
        return Learned(train_index, onehot(noisy[train_index]))
    if config.stage.is_student:
        return Learned(train_index, soft_targets(teacher_weights.to(device), inputs))
    if config.is_pll:
        return Learned(train_index, partial_label_targets(teacher_weights.to(device), inputs, config.pll_k))
    if name == "ls":
        return Learned(train_index, label_smoothing_targets(onehot(noisy[train_index])))
    if name == "clean":
        return Learned(train_index, onehot(true[train_index]))
    if name == "fc-est":
        from training.transition import estimate_transition

        estimate = torch.as_tensor(
            estimate_transition(soft_targets(teacher_weights.to(device), inputs)), dtype=torch.float32
        )
        return Learned(train_index, onehot(noisy[train_index]), estimate, {"transition": estimate.tolist()})
    if name == "fc-true":
        from training.transition import true_transition

        matrix = torch.as_tensor(
            true_transition(config.ctype, config.corruption, num_classes, clusters), dtype=torch.float32
        )
        return Learned(train_index, onehot(noisy[train_index]), matrix)
    if name == "cl":
        kept = cl(train_index)
        rows = train_index[kept]
        return Learned(rows, onehot(noisy[rows]), notes={"flagged": int((~kept).sum()), "kept_rows": int(kept.sum())})
    raise ValueError(f"no method for stage {config.stage}")


def loss_for(configs: list[TrainConfig], transitions: list[torch.Tensor | None], device) -> Loss:
    """The loss of a stack of heads of one stage (forward correction: one T per head)."""
    config = configs[0]
    name = config.stage.name
    if config.is_pll:
        return PartialLabelGCE(q=config.q)
    if name == "gce":
        return GeneralizedCrossEntropy(q=config.q)
    if name == "boot-soft":
        return SoftBootstrap()
    if name == "boot-hard":
        return HardBootstrap()
    if name == "sce":
        return SymmetricCrossEntropy()
    if name in ("fc-est", "fc-true"):
        return ForwardCorrection(torch.stack(transitions).to(device))
    return SoftCrossEntropy()
