"""The teacher against student 1 on hard and on soft pseudo-labels (the GMM paper's 0-SD, 1-SD hard
and 1-SD soft) on two classes of real features.

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

from gmm.config import MIN_M, TuneOptions
from gmm.tune import tune_on_validation
from utils.errors import UsageError
from utils.stages import Stage
from utils.threads import cpu_threads

if TYPE_CHECKING:
    from data import FeatureSet


@dataclass(frozen=True)
class Model:
    """One model of the comparison: the teacher, or student 1 on hard or soft pseudo-labels."""

    stage: Stage
    labels: str | None = None  # a student's pseudo-labels

    @property
    def name(self) -> str:
        """Tables: ``teacher``, ``student 1 (hard)``."""
        return self.stage.label + (f" ({self.labels})" if self.labels else "")

    @property
    def paper(self) -> str:
        """The GMM paper's notation: ``0-SD``, ``1-SD hard``."""
        return f"{self.stage.round}-SD" + (f" {self.labels}" if self.labels else "")


MODELS = (Model(Stage.teacher()), Model(Stage.student(1), "hard"), Model(Stage.student(1), "soft"))


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
    from data import load_feature_file, load_feature_set

    return load_feature_file(features) if features else load_feature_set(dataset)


def check_classes(features: FeatureSet, classes: tuple[int, int], M: int, validation: float) -> None:
    """Raise a one-line error naming a fix that works unless both classes exist in both splits and
    each has enough training samples for ``M`` and ``validation``."""
    a, b = classes
    count = len(features.class_names)
    if not (0 <= a < count and 0 <= b < count):
        raise UsageError(
            f"--classes needs two class indices in 0..{count - 1} ({features.name} has {count} classes), got {a} {b}"
        )
    train = {c: int(np.sum(features.train_labels == c)) for c in range(count)}
    test = {c: int(np.sum(features.test_labels == c)) for c in range(count)}
    both = [c for c in range(count) if train[c] and test[c]]
    choose = (
        f"choose two of the classes present in both splits: {_listing(features, both)}"
        if len(both) >= 2
        else f"{features.name} has fewer than two classes present in both splits; use another feature set"
    )
    for split, counts in (("training", train), ("test", test)):
        for c in classes:
            if not counts[c]:
                raise UsageError(
                    f"--classes: class {c} ({features.class_names[c]}) has no {split} samples in "
                    f"{features.name}; {choose}"
                )
    needed = sum(_split_sizes(M, validation))
    available = min(train[a], train[b])
    if needed > available:
        largest = largest_m(available, validation)
        smallest = MIN_M
        if largest:
            fix = f"use --M {largest} or less"
        else:
            roomy = [c for c in both if train[c] >= sum(_split_sizes(smallest, validation))]
            fix = (
                f"even --M {smallest} (the least) needs {sum(_split_sizes(smallest, validation))}; choose classes "
                f"with more samples: {_listing(features, roomy)}"
                if len(roomy) >= 2
                else f"even --M {smallest} (the least) needs {sum(_split_sizes(smallest, validation))}; use "
                f"another feature set"
            )
        raise UsageError(
            f"--M {M} with --validation {validation:g} needs {needed} training samples per class, "
            f"{features.name} has {available} in class {a if train[a] <= train[b] else b}; {fix}"
        )


def largest_m(available: int, validation: float) -> int:
    """The largest M whose per-class training and validation samples fit in ``available`` (0 if none ≥ 8)."""
    for M in range(2 * available, MIN_M - 1, -1):
        if sum(_split_sizes(M, validation)) <= available:
            return M
    return 0


def _listing(features: FeatureSet, classes: list[int], most: int = 12) -> str:
    shown = ", ".join(f"{c} ({features.class_names[c]})" for c in classes[:most])
    return shown + (f" and {len(classes) - most} more" if len(classes) > most else "")


def _split_sizes(M: int, validation: float) -> tuple[int, int]:
    """Per-class (training, validation) counts: M/2 and ⌈validation·M/2⌉."""
    return M // 2, max(1, math.ceil(validation * M / 2))


def binary_task(
    features: FeatureSet, classes: tuple[int, int], M: int, validation: float, theta: float, rng: np.random.Generator
) -> BinaryTask:
    """Draw a balanced training and validation split, flip round(θ·n) labels per class in each."""
    train_size, val_size = _split_sizes(M, validation)
    parts = {"train": ([], []), "val": ([], [])}
    for label, cls in enumerate(classes):
        pool = rng.permutation(np.flatnonzero(features.train_labels == cls))
        for split, chosen in (("train", pool[:train_size]), ("val", pool[train_size : train_size + val_size])):
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
        train_X=standardise(train_X),
        train_labels=np.concatenate(parts["train"][1]),
        val_X=standardise(np.concatenate(parts["val"][0])),
        val_labels=np.concatenate(parts["val"][1]),
        test_X=standardise(features.test_features[test]),
        test_labels=(features.test_labels[test] == classes[1]).astype(float),
    )


def compare(task: BinaryTask, loss: str, bias: str, tuning: TuneOptions, threads: int = 1) -> dict[Model, dict]:
    """Test error and chosen hyperparameters of the teacher and of student 1 on hard and on soft labels.

    The teacher is tuned on the validation split the same way in both chains (its choice does
    not depend on the pseudo-labels); it is reported once. ``threads``: CPU threads of the fits
    (scoped to the call; they are small, and threads only contend on a shared CPU).
    """
    two_stages = dataclasses.replace(tuning, max_stages=2)
    results = {}
    for labels in ("hard", "soft"):
        with cpu_threads(threads):
            choice = tune_on_validation(
                task.train_X, task.train_labels, task.val_X, task.val_labels, labels, loss, bias, two_stages
            )
        for model in (MODELS[0], Model(Stage.student(1), labels)):
            t = model.stage.round
            w, b = choice.fits[t]
            results[model] = {
                "error": scored_error(task.test_X, task.test_labels, w, b),
                "lambda": choice.lambdas[t],
                "beta": choice.betas[0] if t and choice.betas else None,
            }
    return {model: results[model] for model in MODELS}


def scored_error(X: np.ndarray, labels: np.ndarray, w: np.ndarray, bias: float) -> float:
    """Fraction of rows of X whose prediction (logit w·x/√D + B > 0) disagrees with the 0/1 label."""
    logits = X @ w / np.sqrt(X.shape[1]) + bias
    return float(np.mean((logits > 0) != (labels > 0.5)))
