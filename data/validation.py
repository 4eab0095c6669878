"""A held-out validation split of the noisy training set, for honest model selection (``--select val``)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split

from utils.errors import UsageError
from utils.seeding import derived_seed


def validation_split(
    noisy_labels: np.ndarray, fraction: float, seed: int, *tags: object
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): stratified by the noisy labels, seeded by ``seed`` and ``tags``.

    Only the noisy labels are used: the true training labels and the test set are never read.
    Classes too rare to stratify fall back to an unstratified split.
    """
    rows = np.arange(noisy_labels.shape[0])
    state = derived_seed(seed, "validation", *tags) % (2**32)
    counts = np.bincount(noisy_labels)
    stratify = noisy_labels if counts[counts > 0].min() >= 2 else None
    held = math.ceil(fraction * len(rows))  # how scikit-learn rounds a fractional test_size
    needed = int((counts > 0).sum()) if stratify is not None else 1  # a stratified split puts every class in both
    if min(held, len(rows) - held) < needed:
        raise UsageError(
            f"--val-fraction {fraction:g} holds out {held} of the {len(rows)} training rows, leaving "
            f"{len(rows) - held}: each part needs at least {needed} (one per class); choose a fraction between "
            f"{needed / len(rows):.3g} and {1 - needed / len(rows):.3g}"
        )
    train, val = train_test_split(rows, test_size=fraction, stratify=stratify, random_state=state)
    return np.sort(train), np.sort(val)
