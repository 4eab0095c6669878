"""Confident learning (Northcutt et al. 2021, "Confident Learning: Estimating Uncertainty in Dataset
Labels"), with cleanlab: which noisy training labels to drop before training a head on the rest.

cleanlab is used, not re-implemented: ``cleanlab.filter.find_label_issues(labels, pred_probs)`` with
its defaults (``filter_by="prune_by_noise_rate"``, ``frac_noise=1``, …) on out-of-fold predicted
probabilities. Only ``n_jobs=1`` is passed: cleanlab documents that n_jobs changes run time, never
the result, and its default forks a pool of processes — not something a library call should do
in a process that holds torch's threads.

The out-of-fold probabilities come from ``folds`` stratified folds (scikit-learn's
``StratifiedKFold``, shuffled with a seed derived from the run's seed): the head of fold f is
trained by the engine (:func:`training.engine.train_sgd`) on the noisy labels of every row outside
fold f, and gives the probabilities of fold f's rows from its last epoch's weights (no test
selection: the heads see no test set at all). Heads whose training sets have the same size — all
of them when the folds are equally large — train together as one stacked problem.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from models.losses import SoftCrossEntropy
from training.engine import HeadProblem, Progress, SGDSettings, train_sgd
from training.randomness import BatchOrder
from training.targets import one_hot_targets
from utils.seeding import derived_seed

FOLDS = 5


def stratified_folds(labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """(N,) fold id in [0, folds) of every row: ``StratifiedKFold(folds, shuffle=True)``, seeded from ``seed``.

    Each fold holds about 1/folds of every class (per-class counts differ by at most one between folds).
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    split_seed = derived_seed(seed, "confident-learning-folds") % 2**32
    fold = np.full(labels.shape[0], -1, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=split_seed)
    for f, (_, held_out) in enumerate(splitter.split(np.zeros((labels.shape[0], 1)), labels)):
        fold[held_out] = f
    if not (fold >= 0).all():
        raise RuntimeError("every row belongs to a fold")
    return fold


def fold_problems(
    features: torch.Tensor,
    labels: torch.Tensor,
    fold: np.ndarray,
    num_classes: int,
    init: torch.Tensor,
    order: BatchOrder,
) -> list[tuple[list[int], HeadProblem]]:
    """The heads of the folds, as (folds, stacked problem) pairs: one problem per training-set size.

    Head f trains on the rows with ``fold != f``, from ``init`` (K, D) with a fresh copy of ``order``,
    on one-hot targets of ``labels`` (the noisy labels). The problems carry no test rows, and the
    noisy labels stand in for the true ones in the engine's log (confident learning never sees the truth).
    """
    device = features.device
    labels = torch.as_tensor(labels, device=device)
    rows_of = [np.flatnonzero(fold != f) for f in range(int(fold.max()) + 1)]
    by_size: dict[int, list[int]] = {}
    for f, rows in enumerate(rows_of):
        by_size.setdefault(rows.size, []).append(f)
    problems = []
    for members in by_size.values():
        train_index = torch.as_tensor(np.stack([rows_of[f] for f in members]), device=device)
        noisy = labels[train_index]
        problems.append(
            (
                members,
                HeadProblem(
                    features=features,
                    test_features=features[:0],
                    test_labels=labels[:0],
                    train_index=train_index,
                    targets=one_hot_targets(noisy, num_classes),
                    true_labels=noisy,
                    noisy_labels=noisy,
                    init=init.to(device).expand(len(members), -1, -1).clone(),
                    orders=[order] * len(members),
                    loss=SoftCrossEntropy(),
                ),
            )
        )
    return problems


def out_of_fold_probabilities(
    features: torch.Tensor,
    labels,
    fold: np.ndarray,
    num_classes: int,
    settings: SGDSettings,
    init: torch.Tensor,
    order: BatchOrder,
    progress: Progress | None = None,
) -> np.ndarray:
    """(N, K) float64: row i's softmax from the last-epoch head of the fold that left row i out.

    ``features`` (N, D) and ``labels`` (N,) are the rows confident learning judges (the training
    rows) and their noisy labels; ``fold`` (N,) from :func:`stratified_folds`; ``settings`` the
    stage's SGD settings (its ``select`` is ignored: the last epoch's weights are used).
    """
    fold = np.asarray(fold)
    settings = dataclasses.replace(settings, select="test")  # the heads have no test rows; their last epoch is used
    probabilities = np.full((features.shape[0], num_classes), np.nan)
    for members, problem in fold_problems(features, labels, fold, num_classes, init, order):
        for f, result in zip(members, train_sgd(problem, settings, progress)):
            held_out = np.flatnonzero(fold == f)
            rows = features[torch.as_tensor(held_out, device=features.device)].double()
            logits = rows @ result.last_weights.to(rows.device).double().T
            probabilities[held_out] = torch.softmax(logits, dim=-1).cpu().numpy()
    if np.isnan(probabilities).any():
        raise RuntimeError("every row gets a probability from the head that left it out")
    return probabilities


def find_label_issues(labels, pred_probs: np.ndarray) -> np.ndarray:
    """(N,) bool, True where cleanlab's confident learning flags the label: its defaults, ``n_jobs=1``."""
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues

    return np.asarray(cleanlab_find_label_issues(np.asarray(labels), pred_probs, n_jobs=1), dtype=bool)


@dataclasses.dataclass(frozen=True)
class ConfidentLearning:
    kept: np.ndarray  # (N,) bool: rows whose label is not flagged, the rows the cl head trains on
    fold: np.ndarray  # (N,) fold of every row
    probabilities: np.ndarray  # (N, K) out-of-fold softmax


def confident_learning(
    features: torch.Tensor,
    labels,
    num_classes: int,
    settings: SGDSettings,
    init: torch.Tensor,
    order: BatchOrder,
    seed: int,
    folds: int = FOLDS,
    progress: Progress | None = None,
) -> ConfidentLearning:
    """Flag label issues among the rows ``features`` (N, D) with noisy ``labels`` (N,); see the module docstring."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    fold = stratified_folds(labels, folds, seed)
    probabilities = out_of_fold_probabilities(features, labels, fold, num_classes, settings, init, order, progress)
    return ConfidentLearning(~find_label_issues(labels, probabilities), fold, probabilities)
