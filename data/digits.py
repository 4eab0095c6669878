"""scikit-learn's bundled 8×8 handwritten digits: 1,797 real images, 10 classes, no download.

The feature map is the identity on standardised pixels (64-d): each pixel is centred and scaled
by its training-split mean and standard deviation; pixels that never vary in the training split
(standard deviation 0) are scaled by 1 instead, so they become constant zeros rather than NaNs.
The train/test split is fixed and stratified (25% test, ``random_state=0``).
"""

from __future__ import annotations

import numpy as np

from data.feature_set import FeatureSet

TEST_SIZE = 0.25
SPLIT_STATE = 0
SOURCE = f"sklearn-digits/split-{TEST_SIZE}-{SPLIT_STATE}/standardised"
BACKBONE = "identity"  # the features are the (standardised) pixels themselves


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale columns by the train split's statistics; zero-variance columns keep scale 1."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def load_digits_features() -> FeatureSet:
    from sklearn.datasets import load_digits  # here, not at import: flag parsers import this module
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.data.astype(np.float64)
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_STATE
    )
    x_train, x_test = standardise(x_train, x_test)
    return FeatureSet(
        name="digits",
        train_features=x_train.astype(np.float32),
        train_labels=y_train,
        test_features=x_test.astype(np.float32),
        test_labels=y_test,
        class_names=tuple(str(name) for name in bunch.target_names),
        source=SOURCE,
        backbone=BACKBONE,
    )
