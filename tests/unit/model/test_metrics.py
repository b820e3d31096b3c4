"""Segmentation metrics: agreement scores, matching, bouts and usage."""

from __future__ import annotations

import numpy as np
import pytest

from model.ethogram import bouts_from_labels
from model.metrics import (
    ari,
    bout_durations,
    hungarian_accuracy,
    median_bout_duration,
    nmi,
    states_used,
    summary,
    usage,
)


def test_relabelled_partition_scores_perfectly() -> None:
    truth = np.repeat([0, 1, 2, 1, 0], 20)
    pred = np.array([7, 3, 5])[truth]
    assert ari(truth, pred) == pytest.approx(1.0)
    assert nmi(truth, pred) == pytest.approx(1.0)
    acc, mapping = hungarian_accuracy(truth, pred)
    assert acc == pytest.approx(1.0)
    assert mapping == {7: 0, 3: 1, 5: 2}


def test_random_labels_score_near_chance() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 20000)
    pred = rng.integers(0, 5, 20000)
    assert abs(ari(truth, pred)) < 0.01
    assert nmi(truth, pred) < 0.01
    assert hungarian_accuracy(truth, pred)[0] < 0.25


def test_hungarian_accuracy_counts_extra_states_as_wrong() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 2, 2, 1, 1, 1, 1])  # state 0 split in two
    acc, mapping = hungarian_accuracy(truth, pred)
    assert acc == pytest.approx(6 / 8)
    assert len(mapping) == 2


def test_lists_of_sessions_match_concatenation_but_bouts_stay_apart() -> None:
    a, b = np.array([0, 0, 1, 1]), np.array([1, 1, 2, 2])
    truth = [a, b]
    pred = [a, b]
    assert ari(truth, pred) == pytest.approx(1.0)
    # Joined, the 1s at the seam would make one bout of 4; kept apart they are two of 2.
    np.testing.assert_allclose(bout_durations(pred, fps=2.0), [1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        ari([a], [a[:3]])


def test_bouts_and_median_duration() -> None:
    labels = np.array([3, 3, 3, 1, 1, 3, 0, 0, 0, 0])
    assert bouts_from_labels(labels) == [(0, 3, 3), (3, 5, 1), (5, 6, 3), (6, 10, 0)]
    assert median_bout_duration(labels, fps=10.0) == pytest.approx(0.25)
    assert median_bout_duration(np.array([], dtype=int), fps=30.0) == 0.0


def test_usage_and_states_used() -> None:
    labels = np.array([0] * 500 + [1] * 499 + [2])
    u = usage(labels)
    assert u[0] == pytest.approx(0.5) and u[2] == pytest.approx(0.001)
    assert states_used(labels) == 2  # state 2 is 0.1% of frames: below the default floor
    assert states_used(labels, min_fraction=0.0) == 3


def test_summary_with_and_without_truth() -> None:
    truth = np.repeat([0, 1], 30)
    s = summary(truth, truth, fps=30.0)
    assert s["ari"] == pytest.approx(1.0) and s["median_bout_s"] == pytest.approx(1.0)
    assert "ari" not in summary(None, truth, fps=30.0)
