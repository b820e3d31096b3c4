"""Kinematics per syllable: medians over each syllable's frames, in the unit given."""

from __future__ import annotations

import math

import numpy as np

from app.syllables.kinematics import SAMPLE, SessionMotion, summarise


def test_medians_per_syllable_over_sessions_leave_untracked_frames_out() -> None:
    labels = np.array([0, 0, 0, 1, 1, -1])
    one = SessionMotion(
        syllable=labels,
        speed=np.array([1.0, 2.0, 3.0, 10.0, np.nan, 99.0]),
        turning=np.array([-math.pi, math.pi, 0.0, 0.5, 0.5, 0.0]),
        body_length=np.array([1.0, 1.0, 1.0, 0.7, 0.8, 5.0]),
    )
    two = SessionMotion(
        syllable=np.array([1, 1]),
        speed=np.array([20.0, 30.0]),
        turning=np.array([-0.5, 0.5]),
        body_length=np.array([0.9, 0.6]),
    )
    table = summarise([one, two], "cm")
    assert table.unit == "cm"
    assert table.speed == {0: 2.0, 1: 20.0}  # syllable 1: 10, 20, 30 (the NaN frame left out)
    assert table.turning_deg_s[0] == 180.0  # |turning|: a left turn is as fast as a right one
    assert math.isclose(table.turning_deg_s[1], math.degrees(0.5))
    assert table.body_length == {0: 1.0, 1: 0.75}
    assert -1 not in table.speed  # unsegmented frames belong to no syllable


def test_long_syllables_are_sampled_evenly() -> None:
    n = 3 * SAMPLE
    motion = SessionMotion(
        syllable=np.zeros(n, dtype=np.int64),
        speed=np.arange(n, dtype=np.float64),
        turning=np.zeros(n),
        body_length=np.ones(n),
    )
    median = summarise([motion], "px").speed[0]
    assert abs(median - (n - 1) / 2) <= 3  # the sample's median is the whole's, to a step
