"""The one shape every dataset takes after loading: frozen features and labels, samples as rows.

:func:`split_problem` and :func:`check_splits` say what is wrong with arrays that claim to be a
dataset (a user's ``--features`` file, a feature cache, an image folder's labels), so that each
reader turns it into one line: a file is refused, a cache rebuilt.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from utils.errors import UserError

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Train and test features of one dataset, with what produced them.

    ``source`` is a short, stable description of everything that determines the features
    (dataset, backbone, weights, transform, or a file's content hash); run folders hash it.
    ``backbone`` names the feature map: a torchvision architecture (``resnet34``, ``vit_b_16``),
    ``identity`` (digits pixels), ``planted`` (synthetic) or ``file-<sha8>`` (a ``--features``
    file, the first 8 hex digits of its SHA-256); ``weights`` is the exact weights name
    (``ResNet34_Weights.IMAGENET1K_V1``, ``random-init-seed0``) or ``none``.
    ``superclasses`` is the planted class grouping where one is known (the synthetic set), else None.
    """

    name: str
    train_features: np.ndarray  # (N, D) float32
    train_labels: np.ndarray  # (N,) int64
    test_features: np.ndarray  # (M, D) float32
    test_labels: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]
    source: str
    backbone: str = "unknown"
    weights: str = "none"
    superclasses: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        n, d = self.train_features.shape
        if self.train_labels.shape != (n,):
            raise ValueError("train labels must be (N,)")
        if not (self.test_features.ndim == 2 and self.test_features.shape[1] == d):
            raise ValueError("test features must be (M, D)")
        if self.test_labels.shape != (self.test_features.shape[0],):
            raise ValueError("test labels must be (M,)")
        if len(self.class_names) != self.num_classes:
            raise ValueError("one class name per class")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return int(self.train_features.shape[1])


def _listed(values, limit: int = 5) -> str:
    values = [int(v) for v in values]
    return ", ".join(map(str, values[:limit])) + (f" … ({len(values)} in all)" if len(values) > limit else "")


def features_problem(array: np.ndarray, key: str) -> str | None:
    """What keeps ``array`` from being an (N, D) matrix of real finite numbers with N, D ≥ 1, or None."""
    real = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if array.dtype == np.bool_ or not real:
        return f"{key} has dtype {array.dtype}; features must be real numbers (float32 or float64)"
    if array.ndim != 2:
        return f"{key} must be a 2-d array (N, D), got shape {array.shape}"
    if array.shape[0] == 0:
        return f"{key} has 0 rows; each split needs at least one sample"
    if array.shape[1] == 0:
        return f"{key} has 0 columns; features need at least one dimension"
    finite = np.isfinite(array).all(axis=1) if np.issubdtype(array.dtype, np.floating) else np.ones(len(array), bool)
    if not finite.all():
        return f"{key} contains NaN or infinite values (in {int((~finite).sum())} of {len(array)} rows)"
    largest = float(np.abs(array).max()) if array.dtype.kind in "fiu" else 0.0
    if largest > FLOAT32_MAX:
        return f"{key} holds values too large for float32 (|x| up to {largest:.3g})"
    # A row's squared norm (and so a logit of a unit-norm head) must be finite in float32, or training overflows.
    limit = math.sqrt(FLOAT32_MAX / array.shape[1])
    if largest > limit:
        return (
            f"{key} holds values up to {largest:.3g}, beyond what float32 arithmetic on {array.shape[1]}-d rows "
            f"can handle (|x| ≤ {limit:.3g}); rescale the features (e.g. divide by their largest value)"
        )
    return None


def labels_problem(array: np.ndarray, key: str, rows: int) -> str | None:
    """What keeps ``array`` from being ``rows`` integer labels, or None (:func:`split_problem` checks the range)."""
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        return f"{key} has dtype {array.dtype}; labels must be integers 0..K-1 (convert with .astype('int64'))"
    if array.ndim != 1:
        return f"{key} must be a 1-d array (N,), got shape {array.shape}"
    if array.shape[0] != rows:
        return f"{key} has {array.shape[0]} labels but the features have {rows} rows"
    if array.size and np.issubdtype(array.dtype, np.unsignedinteger) and int(array.max()) > np.iinfo(np.int64).max:
        return f"{key} holds labels too large for int64"
    return None


def split_problem(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...] | None = None,
) -> str | None:
    """The first thing that keeps these arrays from being a dataset, or None.

    Features: real finite numbers, (N, D) and (M, D) with N, M, D ≥ 1. Labels: integers in [0, K),
    K = len(class_names) (else max label + 1), at least two classes, every class with a training
    sample (so every test class is a training class).
    """
    problem = (
        features_problem(x_train, "train_features")
        or features_problem(x_test, "test_features")
        or labels_problem(y_train, "train_labels", x_train.shape[0])
        or labels_problem(y_test, "test_labels", x_test.shape[0])
    )
    if problem:
        return problem
    if x_train.shape[1] != x_test.shape[1]:
        return f"train_features has dimension {x_train.shape[1]} but test_features {x_test.shape[1]}"
    if class_names is None:
        # Every class needs a training sample, so K ≤ N: a larger label is refused before anything K-sized exists.
        rows = x_train.shape[0]
        for key, labels in (("train_labels", y_train), ("test_labels", y_test)):
            if int(labels.max()) >= rows or int(labels.min()) < 0:
                bad = np.unique(labels[(labels < 0) | (labels >= rows)])
                return (
                    f"{key} hold {_listed(bad)}, outside 0..{rows - 1}: labels number the classes 0..K-1, "
                    f"and each class needs one of the {rows} training samples"
                )
    k = len(class_names) if class_names is not None else int(max(y_train.max(), y_test.max())) + 1
    for key, labels in (("train_labels", y_train), ("test_labels", y_test)):
        if labels.min() < 0 or labels.max() >= k:
            bad = np.unique(labels[(labels < 0) | (labels >= k)])
            return f"{key} hold {_listed(bad)}, outside 0..{k - 1} (one class per class name)"
    present = np.unique(y_train)
    unseen = np.setdiff1d(np.unique(y_test), present)
    if unseen.size:
        return f"test_labels hold class(es) {_listed(unseen)} that no training sample has"
    if present.size < 2:
        return f"the training labels hold {present.size} class; at least two classes are needed"
    missing = np.setdiff1d(np.arange(k), present)
    if missing.size:
        return (
            f"no training sample has class(es) {_listed(missing)} of the {k} classes; "
            f"remove them from class_names and renumber the labels 0..K-1"
        )
    return None


def check_splits(
    where: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...] | None = None,
) -> None:
    """Raise a one-line :class:`UserError` naming ``where`` (a file, a dataset) if the arrays are not a dataset."""
    problem = split_problem(x_train, y_train, x_test, y_test, class_names)
    if problem:
        raise UserError(f"{where}: {problem}")
