"""Calibration and label-correction metrics on hand-made predictions, with the numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.metrics import candidate_coverage, expected_calibration_error, label_correction


def test_ece_by_hand_with_a_confidence_on_a_bin_edge():
    probabilities = np.array(
        [
            [0.90, 0.10],  # confidence 0.9, correct: bin 13 = (13/15, 14/15] = (0.8667, 0.9333]
            [0.10, 0.90],  # confidence 0.9, wrong: bin 13
            [0.60, 0.40],  # confidence 0.6 = 9/15 exactly, correct: the edge belongs to the bin below, 8 = (8/15, 9/15]
            [0.62, 0.38],  # confidence 0.62, wrong: bin 9 = (0.6, 0.6667]
        ]
    )
    labels = np.array([0, 0, 0, 1])
    # bin 13: 2/4 · |1/2 − 0.9| = 0.2; bin 8: 1/4 · |1 − 0.6| = 0.1; bin 9: 1/4 · |0 − 0.62| = 0.155 → 0.455
    assert expected_calibration_error(probabilities, labels) == pytest.approx(45.5, rel=1e-12)
    # had the edge gone to bin 9, bins 8 and 9 would pool: 2/4 · |1/2 − 0.61| = 0.055, ECE 25.5
    assert expected_calibration_error(torch.tensor(probabilities), torch.tensor(labels)) == pytest.approx(45.5)


def test_ece_by_hand_three_classes_and_the_extremes():
    probabilities = np.array(
        [
            [1.0, 0.0, 0.0],  # confidence 1: the last bin (14/15, 1], correct
            [0.2, 0.5, 0.3],  # confidence 0.5: bin 7 = (7/15, 8/15], wrong (label 2)
            [0.4, 0.4, 0.2],  # tie: prediction is class 0 (the first), confidence 0.4: bin 5 = (1/3, 0.4], correct
        ]
    )
    labels = np.array([0, 2, 0])
    # bin 14: 1/3 · |1 − 1| = 0; bin 7: 1/3 · 0.5; bin 5: 1/3 · |1 − 0.4| = 0.2 → (0.5 + 0.6)/3 = 0.36667
    assert expected_calibration_error(probabilities, labels) == pytest.approx(100 * 1.1 / 3, rel=1e-12)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0  # confident and right
    assert expected_calibration_error(np.eye(3), np.array([1, 2, 0])) == pytest.approx(100.0)  # confident and wrong
    assert math.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)))


def test_ece_bins_by_count():
    """One bin pools everything: ECE = |accuracy − mean confidence|."""
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    labels = np.array([0, 1, 1])
    # accuracy 2/3, mean confidence (0.9 + 0.7 + 0.8)/3 = 0.8 → |0.6667 − 0.8| = 0.1333
    assert expected_calibration_error(probabilities, labels, bins=1) == pytest.approx(100 * (0.8 - 2 / 3))
    # 15 bins: 0.9 in bin 13, 0.7 in bin 10 (0.7·15 = 10.5), 0.8 in bin 11 (12/15 = 0.8 is an upper edge):
    # (|1 − 0.9| + |0 − 0.7| + |1 − 0.8|)/3 = 1.0/3
    assert expected_calibration_error(probabilities, labels) == pytest.approx(100 / 3)


def test_label_correction_by_hand():
    true = np.array([0, 0, 1, 1, 2, 2, 1])
    noisy = np.array([0, 1, 1, 0, 2, 0, 2])  # rows 1, 3, 5 and 6 corrupted; 0, 2, 4 clean
    predicted = np.array([0, 0, 2, 1, 2, 0, 1])
    # corrupted: row 1 → 0 = true ✓, row 3 → 1 ✓, row 5 → 0 (the noisy label) ✗, row 6 → 1 ✓: 3/4
    # clean: row 0 ✓, row 2 → 2 ✗, row 4 ✓: 2/3
    result = label_correction(predicted, true, noisy)
    assert result.corrected == pytest.approx(75.0)
    assert result.kept == pytest.approx(200 / 3)
    assert (result.corrupted, result.clean) == (4, 3)
    assert result.as_dict() == {"corrected": 75.0, "kept": pytest.approx(200 / 3), "corrupted": 4, "clean": 3}
    on_tensors = label_correction(torch.tensor(predicted), torch.tensor(true), torch.tensor(noisy))
    assert on_tensors == result


def test_label_correction_without_corrupted_rows_is_nan():
    labels = np.array([0, 1, 2])
    result = label_correction(np.array([0, 1, 1]), labels, labels)
    assert math.isnan(result.corrected) and result.kept == pytest.approx(200 / 3)


def test_candidate_coverage_by_hand():
    targets = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    true = np.array([1, 0, 2, 2])  # in, out, in, out: 2/4
    assert candidate_coverage(targets, true) == pytest.approx(50.0)
    assert candidate_coverage(torch.tensor(targets > 0), torch.tensor(true)) == pytest.approx(50.0)
