"""Confident learning: stratified folds, out-of-fold probabilities from heads that never saw the row,
and cleanlab finding planted label flips on a Gaussian mixture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from data.noise import make_noisy_labels
from models.heads import init_head
from training.confident import (
    FOLDS,
    confident_learning,
    find_label_issues,
    fold_problems,
    out_of_fold_probabilities,
    stratified_folds,
)
from training.engine import SGDSettings
from training.randomness import IndependentOrder
from utils.threads import cpu_threads

K, D = 4, 8
SETTINGS = SGDSettings(lr=0.1, wd=1e-4, epochs=10, batch_size=32, gamma=1.0, momentum=0.9, select="val")


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):  # tiny matmuls: one thread is faster and the numbers do not depend on the machine
        yield


def mixture(seed=0, per_class=150, separation=4.0, eta=0.2):
    """Four well-separated Gaussian classes in 8 dimensions, with planted symmetric label noise."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(K), per_class)
    x = (separation * np.eye(K, D)[true] + rng.normal(size=(true.size, D))).astype(np.float32)
    noisy = make_noisy_labels(true, "sym", eta, seed, K).labels
    return torch.from_numpy(x), true, noisy


def draws(seed=0):
    return init_head(K, D, torch.Generator().manual_seed(seed)), IndependentOrder(torch.Generator().manual_seed(seed))


def test_folds_are_stratified_seeded_and_partition_the_rows():
    labels = np.repeat(np.arange(3), [50, 37, 23])
    fold = stratified_folds(labels, FOLDS, seed=1)
    assert set(np.unique(fold)) == set(range(FOLDS))
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=FOLDS)
        assert counts.max() - counts.min() <= 1, counts
    assert np.array_equal(fold, stratified_folds(labels, FOLDS, seed=1))
    assert not np.array_equal(fold, stratified_folds(labels, FOLDS, seed=2))


def test_each_fold_head_trains_on_every_row_outside_its_fold_only():
    x, _, noisy = mixture(per_class=31)  # 124 rows: folds of 25 and 24, so two stacks
    fold = stratified_folds(noisy, FOLDS, seed=0)
    init, order = draws()
    problems = fold_problems(x, torch.from_numpy(noisy), fold, K, init, order)
    assert len(problems) == len(np.unique(np.bincount(fold)))
    seen = []
    for members, problem in problems:
        assert problem.test_features.shape[0] == 0  # nothing to select an epoch with
        for f, rows in zip(members, problem.train_index.numpy()):
            assert np.array_equal(np.sort(rows), np.flatnonzero(fold != f))
            assert torch.equal(problem.targets[members.index(f)].argmax(-1), torch.from_numpy(noisy[rows]))
            seen.append(f)
    assert sorted(seen) == list(range(FOLDS))


def test_out_of_fold_probabilities_come_from_heads_that_never_saw_the_row():
    """Flip one row's label, folds fixed: its own fold's probabilities do not move; the others' do."""
    x, _, noisy = mixture(per_class=60)
    fold = stratified_folds(noisy, FOLDS, seed=0)
    init, order = draws()
    before = out_of_fold_probabilities(x, noisy, fold, K, SETTINGS, init, order)
    poisoned = noisy.copy()
    row = 7
    poisoned[row] = (noisy[row] + 1) % K
    after = out_of_fold_probabilities(x, poisoned, fold, K, SETTINGS, init, order)
    own = fold == fold[row]
    np.testing.assert_array_equal(after[own], before[own])
    assert np.abs(after[~own] - before[~own]).max() > 1e-4  # the heads that trained on the row did change
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-12)


def test_last_epoch_weights_give_the_probabilities():
    """The fold heads' probabilities are the last epoch's: one more epoch changes them, a select rule does not."""
    x, _, noisy = mixture(per_class=40)
    fold = stratified_folds(noisy, FOLDS, seed=0)
    init, order = draws()
    base = out_of_fold_probabilities(x, noisy, fold, K, SETTINGS, init, order)
    same = out_of_fold_probabilities(x, noisy, fold, K, dataclasses.replace(SETTINGS, select="test"), init, order)
    longer = out_of_fold_probabilities(x, noisy, fold, K, dataclasses.replace(SETTINGS, epochs=11), init, order)
    np.testing.assert_array_equal(base, same)
    assert np.abs(longer - base).max() > 1e-5


def test_confident_learning_finds_planted_flips():
    x, true, noisy = mixture(seed=0)
    init, order = draws()
    result = confident_learning(x, noisy, K, SETTINGS, init, order, seed=0)
    flipped, flagged = noisy != true, ~result.kept
    recall = (flagged & flipped).sum() / flipped.sum()
    precision = (flagged & flipped).sum() / flagged.sum()
    assert flipped.sum() > 80  # about 20% of 600 rows
    assert recall >= 0.8 and precision >= 0.8, (recall, precision)
    assert np.array_equal(flagged, find_label_issues(noisy, result.probabilities))
