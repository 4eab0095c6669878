"""A held-out validation split of the noisy training set, for honest model selection (``--select val``)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

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
    train, val = train_test_split(rows, test_size=fraction, stratify=stratify, random_state=state)
    return np.sort(train), np.sort(val)
