"""The torch half of the method registry (:mod:`utils.methods`): each entry's targets and loss, resolved here.

A method's targets function takes a :class:`Given` (what a head may learn from) and returns the
(rows × K) targets, or a :class:`Learned` when it also changes the training rows or computes more
(forward correction's transition matrix, confident learning's kept rows). The functions below are
the targets of the registered methods:

- teacher and most baselines: one-hot noisy labels (the baselines draw the teacher's labels);
- student t: the previous round's softmax; PLL: 1/k on the teacher's top-k classes;
- ``ls``: smoothed noisy labels (ε = 0.1); ``clean``: one-hot true labels;
- ``fc-est`` / ``fc-true``: one-hot noisy labels with the transition matrix estimated from the
  teacher's checkpoint (anchor points) or the one the noise was drawn from;
- ``cl``: confident learning (cleanlab on 5-fold out-of-fold predictions) keeps some rows.

Losses and their closed-form gradients are in :mod:`models.losses`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Callable

import numpy as np
import torch

from models.losses import Loss, label_smoothing_targets
from training.config import TrainConfig
from training.targets import one_hot_targets, partial_label_targets, soft_targets
from training.transition import estimate_transition
from training.transition import true_transition as matrix_of
from utils.methods import TRANSITION, Method


@dataclasses.dataclass
class Learned:
    """A head's training rows (indices into the dataset), targets (rows × K), and what the method computed."""

    train_index: np.ndarray
    targets: torch.Tensor
    transition: torch.Tensor | None = None  # forward correction's T (K, K)
    notes: dict = dataclasses.field(default_factory=dict)  # recorded in run.json


@dataclasses.dataclass(frozen=True)
class Given:
    """What a method's targets may be computed from."""

    config: TrainConfig
    inputs: torch.Tensor  # the training rows' features (rows × D)
    noisy: np.ndarray  # the noisy label of every training sample
    train_index: np.ndarray  # the training rows (indices into the dataset)
    true: np.ndarray  # the true label of every training sample
    num_classes: int
    source: torch.Tensor | None  # the weights (K, D) of the checkpoint it reads (Stage.checkpoint_source)
    clusters: np.ndarray | None  # cluster id per class, for cc noise
    confident: Callable[[np.ndarray], np.ndarray] | None  # rows → kept mask (confident learning)

    def one_hot(self, labels: np.ndarray) -> torch.Tensor:
        return one_hot_targets(torch.as_tensor(labels, device=self.inputs.device), self.num_classes)

    def source_softmax(self) -> torch.Tensor:
        return soft_targets(self.source.to(self.inputs.device), self.inputs)


@functools.cache
def resolve(path: str):
    """The object a registry path ``module:attribute`` names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def learned(
    config: TrainConfig,
    inputs: torch.Tensor,
    noisy: np.ndarray,
    train_index: np.ndarray,
    true: np.ndarray,
    num_classes: int,
    source_weights: torch.Tensor | None,
    clusters,
    cl=None,
) -> Learned:
    """The targets of ``config``'s stage on the training rows ``train_index`` (``inputs`` are their features).

    ``source_weights`` are those of the checkpoint the stage reads; ``cl`` is a function (rows) → kept
    mask, for confident learning.
    """
    given = Given(config, inputs, noisy, train_index, true, num_classes, source_weights, clusters, cl)
    found = resolve(config.stage.method.targets)(given)
    return found if isinstance(found, Learned) else Learned(train_index, found)


def loss_for(configs: list[TrainConfig], transitions: list[torch.Tensor | None], device) -> Loss:
    """The loss of a stack of heads of one stage (forward correction: one T per head)."""
    config = configs[0]
    method: Method = config.stage.method
    options = {name: getattr(config, name) for name in method.loss_settings}
    if TRANSITION in method.needs:
        options["transition"] = torch.stack(transitions).to(device)
    return resolve(method.loss)(**options)


# -- the registered methods' targets -------------------------------------------------------------------


def noisy_one_hot(given: Given) -> torch.Tensor:
    return given.one_hot(given.noisy[given.train_index])


def true_one_hot(given: Given) -> torch.Tensor:
    return given.one_hot(given.true[given.train_index])


def smoothed_noisy(given: Given) -> torch.Tensor:
    return label_smoothing_targets(noisy_one_hot(given))


def previous_softmax(given: Given) -> torch.Tensor:
    return given.source_softmax()


def top_k_candidates(given: Given) -> torch.Tensor:
    return partial_label_targets(given.source.to(given.inputs.device), given.inputs, given.config.pll_k)


def estimated_transition(given: Given) -> Learned:
    estimate = torch.as_tensor(estimate_transition(given.source_softmax()), dtype=torch.float32)
    return Learned(given.train_index, noisy_one_hot(given), estimate, {"transition": estimate.tolist()})


def true_transition(given: Given) -> Learned:
    config = given.config
    matrix = matrix_of(config.ctype, config.corruption, given.num_classes, given.clusters)
    return Learned(given.train_index, noisy_one_hot(given), torch.as_tensor(matrix, dtype=torch.float32))


def confident_rows(given: Given) -> Learned:
    kept = given.confident(given.train_index)
    rows = given.train_index[kept]
    notes = {"flagged": int((~kept).sum()), "kept_rows": int(kept.sum())}
    return Learned(rows, given.one_hot(given.noisy[rows]), notes=notes)
