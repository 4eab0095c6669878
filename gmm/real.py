"""The GMM study's 0-SD / 1-SD hard / 1-SD soft comparison on two classes of real features.

From a :class:`data.FeatureSet`: M balanced training samples of classes A (label 0) and B
(label 1), an extra balanced validation split from the remaining training pool, a fraction θ of
each class's labels flipped in both, features standardised with the training split's statistics
and the dataset's clean test split for scoring. λ (and β) are chosen per stage on the validation
split by the same greedy search as the GMM simulations; the test split is only scored.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from gmm.tune import TuneOptions, tune_on_validation
from utils.errors import UsageError, UserError

if TYPE_CHECKING:
    from data import FeatureSet

MODELS = ("0-SD", "1-SD hard", "1-SD soft")


@dataclass(frozen=True)
class BinaryTask:
    """Standardised features (rows are samples) and 0/1 labels; train and validation labels are noisy."""

    train_X: np.ndarray
    train_labels: np.ndarray
    val_X: np.ndarray
    val_labels: np.ndarray
    test_X: np.ndarray
    test_labels: np.ndarray


def load_features(dataset: str | None, features: str | None) -> FeatureSet:
    """A feature set by dataset name (through the data layer's registry) or from a feature file."""
    # imported here: the data layer pulls in torch and scikit-learn (seconds), which only this needs
    from data import DataOptions, load_feature_file, load_feature_set

    return load_feature_file(features) if features else load_feature_set(dataset, DataOptions())


def check_classes(features: FeatureSet, classes: tuple[int, int], M: int, validation: float) -> None:
    """Raise :class:`UserError` unless both classes exist and each has enough training samples."""
    a, b = classes
    if a == b or not (0 <= a < features.num_classes and 0 <= b < features.num_classes):
        raise UsageError(f"--classes needs two different class indices in 0..{features.num_classes - 1}, got {a} {b}")
    per_class = _split_sizes(M, validation)
    available = min(int(np.sum(features.train_labels == c)) for c in classes)
    if sum(per_class) > available:
        largest = int(2 * available / (1 + validation))
        raise UsageError(f"--M {M} with --validation {validation:g} needs {sum(per_class)} training samples per "
                        f"class, {features.name} has {available}; use --M {largest - largest % 2} or less")
    if not all(np.any(features.test_labels == c) for c in classes):
        raise UserError(f"the test split of {features.name} lacks class {a} or {b}")


def _split_sizes(M: int, validation: float) -> tuple[int, int]:
    """Per-class (training, validation) counts: M/2 and ⌈validation·M/2⌉."""
    return M // 2, max(1, math.ceil(validation * M / 2))


def binary_task(features: FeatureSet, classes: tuple[int, int], M: int, validation: float, theta: float,
                rng: np.random.Generator) -> BinaryTask:
    """Draw a balanced training and validation split, flip round(θ·n) labels per class in each."""
    train_size, val_size = _split_sizes(M, validation)
    parts = {"train": ([], []), "val": ([], [])}
    for label, cls in enumerate(classes):
        pool = rng.permutation(np.flatnonzero(features.train_labels == cls))
        for split, chosen in (("train", pool[:train_size]), ("val", pool[train_size:train_size + val_size])):
            labels = np.full(len(chosen), float(label))
            flipped = rng.choice(len(chosen), size=int(round(theta * len(chosen))), replace=False)
            labels[flipped] = 1.0 - labels[flipped]
            parts[split][0].append(features.train_features[chosen])
            parts[split][1].append(labels)
    train_X = np.concatenate(parts["train"][0]).astype(float)
    mean, std = train_X.mean(axis=0), train_X.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant features (e.g. blank border pixels) stay at 0

    def standardise(x):
        return (np.asarray(x, dtype=float) - mean) / std

    test = np.isin(features.test_labels, classes)
    return BinaryTask(
        train_X=standardise(train_X), train_labels=np.concatenate(parts["train"][1]),
        val_X=standardise(np.concatenate(parts["val"][0])), val_labels=np.concatenate(parts["val"][1]),
        test_X=standardise(features.test_features[test]),
        test_labels=(features.test_labels[test] == classes[1]).astype(float),
    )


def compare(task: BinaryTask, loss: str, bias: str, tuning: TuneOptions, threads: int = 1) -> dict[str, dict]:
    """Test error and chosen hyperparameters of 0-SD, 1-SD with hard and 1-SD with soft labels.

    ``threads`` caps BLAS threads: the fits are small, and threads only contend on a shared CPU.
    """
    two_stages = dataclasses.replace(tuning, max_stages=2)
    results = {}
    for labels in ("hard", "soft"):
        with threadpool_limits(limits=threads, user_api="blas"):
            choice = tune_on_validation(task.train_X, task.train_labels, task.val_X, task.val_labels,
                                        labels, loss, bias, two_stages)
        stages = {"0-SD": 0, f"1-SD {labels}": 1}
        for name, t in stages.items():
            w, b = choice.fits[t]
            logits = task.test_X @ w / np.sqrt(task.test_X.shape[1]) + b
            results[name] = {"error": float(np.mean((logits > 0) != (task.test_labels > 0.5))),
                             "lambda": choice.lambdas[t], "beta": choice.betas[0] if t and choice.betas else None}
    return {name: results[name] for name in MODELS}
