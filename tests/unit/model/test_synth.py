"""Synthetic mouse videos: the semi-Markov behaviour chain, rendering and files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.synth import (
    BEHAVIOURS,
    read_truth,
    render_session,
    transition_matrix,
    write_dataset,
    write_session,
)
from model.video import iter_frames, probe


def test_transition_matrix_is_a_jump_chain() -> None:
    a = transition_matrix()
    k = len(BEHAVIOURS)
    assert k >= 6
    assert a.shape == (k, k)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert np.all(np.diag(a) == 0) and np.all(a[~np.eye(k, dtype=bool)] > 0)
    with pytest.raises(ValueError):
        transition_matrix({"fly": 2.0})
    with pytest.raises(ValueError):
        transition_matrix([1.0, 2.0])


def test_behaviour_chain_durations_and_coverage() -> None:
    _, truth = render_session(300, seed=1)  # frames are lazy: nothing is rendered here
    assert truth.n_frames == 9000
    assert set(np.unique(truth.behaviour)) == set(range(len(BEHAVIOURS)))
    bouts = truth.bouts()[:-1]  # the last bout is cut by the end of the session
    durations = np.array([e - s for s, e, _ in bouts]) / truth.fps
    assert durations.min() >= 0.3 - 1e-9 and durations.max() <= 1.0 + 1e-9
    assert 0.4 < np.median(durations) < 0.9
    # Mean bout length per behaviour follows the table it was drawn from (gamma, clipped).
    for k in range(len(BEHAVIOURS)):
        d = durations[[b == k for _, _, b in bouts]]
        assert abs(d.mean() - truth.mean_duration[k]) < 0.12, BEHAVIOURS[k]
    # The mouse stays in the arena.
    w, h = truth.size
    r = np.hypot(truth.x - w / 2, truth.y - h / 2)
    assert r.max() < 0.45 * min(w, h)


def test_behaviour_weights_change_usage() -> None:
    _, control = render_session(300, seed=2)
    _, drug = render_session(300, seed=2, behaviour_weights={"rear": 5.0, "groom": 5.0})
    rear, groom = BEHAVIOURS.index("rear"), BEHAVIOURS.index("groom")
    frac = lambda t, k: np.mean(t.behaviour == k)  # noqa: E731
    assert frac(drug, rear) > 1.8 * frac(control, rear)
    assert frac(drug, groom) > 1.8 * frac(control, groom)


def test_behaviours_differ_in_pose_not_place() -> None:
    """Locomotion moves the mouse, other behaviours do not; every behaviour happens all over."""
    _, truth = render_session(600, seed=3)
    speed = np.hypot(np.gradient(truth.x), np.gradient(truth.y)) * truth.fps
    mean_speed = {b: speed[truth.behaviour == i].mean() for i, b in enumerate(BEHAVIOURS)}
    assert mean_speed["run"] > mean_speed["walk"] > 2 * mean_speed["pause"]
    assert mean_speed["rear"] < mean_speed["walk"] / 2
    w, h = truth.size
    centre_dist = np.hypot(truth.x - w / 2, truth.y - h / 2)
    for i, name in enumerate(BEHAVIOURS):
        d = centre_dist[truth.behaviour == i]
        assert d.std() > 5, name  # not pinned to one place


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_rendered_frames_have_the_right_polarity(polarity: str) -> None:
    frames, truth = render_session(1, seed=5, polarity=polarity, size=(160, 120))
    stack = np.stack(list(frames))
    assert stack.shape == (30, 120, 160) and stack.dtype == np.uint8
    x, y = int(truth.x[0]), int(truth.y[0])
    mouse = float(stack[0, y - 1 : y + 2, x - 1 : x + 2].mean())
    floor = float(np.median(stack[0, 50:70, 70:90]) if abs(x - 80) > 15 else stack[0, 60, 40])
    if polarity == "dark":
        assert mouse < floor - 60
    else:
        assert mouse > floor + 60
    # Sensor noise: two frames of a still floor are not identical.
    assert np.any(stack[0, :10, :10] != stack[1, :10, :10])


def test_rendering_is_deterministic() -> None:
    a = np.stack(list(render_session(0.5, seed=9, size=(96, 72))[0]))
    b = np.stack(list(render_session(0.5, seed=9, size=(96, 72))[0]))
    c = np.stack(list(render_session(0.5, seed=10, size=(96, 72))[0]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_write_dataset(tmp_path: Path) -> None:
    written = write_dataset(tmp_path, n_videos=2, seconds=2, seed=3, polarity="both", size=(96, 72))
    assert len(written) == 2
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    assert manifest["behaviours"] == list(BEHAVIOURS)
    assert manifest["polarity"] == "both"
    for video, truth_csv in written:
        info = probe(video)
        assert (info.codec, info.pix_fmt, info.frame_count) == ("h264", "yuv420p", 60)
        assert info.fps == pytest.approx(30.0)
        ids, names = read_truth(truth_csv)
        assert len(ids) == 60
        assert all(BEHAVIOURS[i] == n for i, n in zip(ids, names, strict=True))
        header = truth_csv.read_text().splitlines()[0]
        assert header == "frame,time_s,behaviour,behaviour_name,x,y,heading"
    # Alternating polarity: the first video has a light floor, the second a dark one.
    floors = [np.percentile(next(iter_frames(v))[2], 90) for v, _ in written]
    assert floors[0] > 100 > floors[1]


def test_a_session_written_alone_is_the_data_sets_session(tmp_path: Path) -> None:
    """Sessions rendered one by one (in parallel, by bench/fit_scale.py) are the ones
    write_dataset makes: same frames, same truth, same polarity by index."""
    together = write_dataset(tmp_path / "all", n_videos=2, seconds=1, seed=4, polarity="both",
                             size=(96, 72))  # fmt: skip
    video, truth_csv = write_session(tmp_path / "one", 1, seconds=1, seed=4, polarity="both",
                                     size=(96, 72))  # fmt: skip
    assert video.name == together[1][0].name and truth_csv.name == together[1][1].name
    assert truth_csv.read_text() == together[1][1].read_text()
    frames = [np.stack([f for _, _, f in iter_frames(v)]) for v in (video, together[1][0])]
    assert np.array_equal(*frames)
    assert np.percentile(frames[0][0], 90) < 100  # index 1 of "both": a dark floor


def test_single_behaviour_cohort_is_allowed() -> None:
    only = {name: 0.0 for name in BEHAVIOURS} | {"groom": 1.0}
    a = transition_matrix(only)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    _, truth = render_session(30, seed=4, behaviour_weights=only)
    assert set(np.unique(truth.behaviour)) == {BEHAVIOURS.index("groom")}
