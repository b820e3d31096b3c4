"""A frame's features must not change when the rest of its session changes: the size that
crops and kinematics are measured in comes from the body as most behaviours show it, not from
how often a session's animal rears or grooms."""

import numpy as np
import pytest

from model import metrics
from model.body import body_scale, typical_area
from model.kinematics import from_scalars
from model.preprocess import preprocess_frames
from model.synth import render_session

WALK_LENGTH, WALK_AREA = 28.0, 230.0
REAR_LENGTH, REAR_AREA = 17.0, 160.0


def _session(rear_share: float, n: int = 3000, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Scalars of a session whose first 600 frames are the same walk in every session, then
    walking and rearing in the given proportion. Returns (scalars, is_first_walk)."""
    rng = np.random.default_rng(seed)
    rest = n - 600
    rear = np.zeros(n, dtype=bool)
    rear[600 + np.flatnonzero(rng.random(rest) < rear_share)] = True
    base = np.random.default_rng(99)  # the shared walk is the same numbers in every session
    length = np.where(rear, REAR_LENGTH, WALK_LENGTH) * (1 + 0.02 * rng.standard_normal(n))
    area = np.where(rear, REAR_AREA, WALK_AREA) * (1 + 0.02 * rng.standard_normal(n))
    speed = np.where(rear, 2.0, 50.0) + rng.standard_normal(n)
    first = np.arange(n) < 600
    length[first] = WALK_LENGTH * (1 + 0.02 * base.standard_normal(600))
    area[first] = WALK_AREA * (1 + 0.02 * base.standard_normal(600))
    speed[first] = 50.0 + base.standard_normal(600)
    scalars = {"speed": speed, "angular_velocity": np.zeros(n), "body_length": length,
               "area": area}
    return scalars, first


def test_typical_area_is_the_body_as_most_behaviours_show_it():
    rng = np.random.default_rng(0)
    walk = WALK_AREA * (1 + 0.02 * rng.standard_normal(4000))
    rear = REAR_AREA * (1 + 0.02 * rng.standard_normal(4000))
    little = np.concatenate([walk, rear[:400]])
    much = np.concatenate([walk, rear[:2400]])
    assert typical_area(little) == pytest.approx(WALK_AREA, rel=0.01)
    assert typical_area(much) == pytest.approx(typical_area(little), rel=0.005)
    # What the median did: it moves with how much the animal rears.
    assert np.median(much) < 0.99 * np.median(little)
    assert typical_area(np.array([])) == 0.0
    assert body_scale(400.0) == pytest.approx(2 * body_scale(100.0))


@pytest.mark.parametrize("recipe", [3])
def test_a_frames_kinematics_do_not_depend_on_how_much_the_session_rears(recipe):
    calm, first = _session(0.05)
    rearing, _ = _session(0.45, seed=1)
    a = from_scalars(calm, recipe)[first][20:-20]  # away from the smoothing's edge
    b = from_scalars(rearing, recipe)[first][20:-20]
    assert np.abs(a - b).mean() < 0.002 and np.abs(a - b).max() < 0.01


def test_the_session_median_made_the_same_walk_look_different():
    # Recipe 2 measured the body against the session's median: the same frames of walking
    # looked stretched in a session with much rearing. Kept to show the test above can fail.
    calm, first = _session(0.05)
    rearing, _ = _session(0.45, seed=1)
    a = from_scalars(calm, 2)[first][20:-20]
    b = from_scalars(rearing, 2)[first][20:-20]
    assert np.abs(a[:, 2] - b[:, 2]).mean() > 0.01  # stretch, in body lengths (1.6 %)


def _body_length(weights: dict[str, float] | None, seed: int) -> tuple[float, float]:
    """(the length scale crops are cut at, the session's median body length)."""
    frames, _ = render_session(20.0, fps=30.0, seed=seed, behaviour_weights=weights)
    pre = preprocess_frames(np.stack(list(frames)))
    return pre.background.body_length, float(np.median(pre.scalars["body_length"]))


def test_crop_scale_does_not_depend_on_the_behaviour_mix():
    """Crops are cut at a side proportional to the body's length scale, learned from frames
    sampled over the video: a session spent mostly rearing and grooming gets the same scale
    as one spent mostly walking, although the median length differs by a fifth."""
    walking, walking_median = _body_length({"walk": 6.0, "run": 3.0}, seed=3)
    curled, curled_median = _body_length({"rear": 6.0, "groom": 6.0}, seed=3)
    assert curled_median < 0.85 * walking_median
    assert curled == pytest.approx(walking, rel=0.035)


def test_syllable_leak_is_zero_when_cohorts_map_behaviours_alike_and_one_when_disjoint():
    truth = np.array([0, 0, 1, 1, 1, 2])
    same = np.array([5, 5, 7, 7, 7, 9])
    leak, per = metrics.syllable_leak([truth], [same], [truth[::-1]], [same[::-1]])
    assert leak == 0.0 and per == {0: 0.0, 1: 0.0, 2: 0.0}
    other = same + 100
    assert metrics.syllable_leak(truth, same, truth, other)[0] == 1.0
    # Behaviour 1 split half and half in cohort B: distance 0.5 for its frames only.
    half = np.array([5, 5, 7, 8, 7, 9])
    t2 = np.array([0, 0, 1, 1, 1, 1])
    h2 = np.array([5, 5, 7, 8, 7, 8])
    leak, per = metrics.syllable_leak(t2, np.array([5, 5, 7, 7, 7, 7]), t2, h2)
    assert per[1] == pytest.approx(0.5) and per[0] == 0.0
    assert leak == pytest.approx(0.5 * 4 * 2 / 12)
    assert half.size == truth.size


def test_feature_shift_measures_within_behaviour_differences():
    rng = np.random.default_rng(0)
    t = np.repeat([0, 1], 500)
    x = rng.standard_normal((1000, 2))
    y = rng.standard_normal((1000, 2))
    y[:, 1] += 1.0  # second feature moves by one standard deviation in every behaviour
    shift = metrics.feature_shift([t], [x], [t], [y])
    assert shift[0] < 0.2 and shift[1] == pytest.approx(1.0, abs=0.15)


def _crops(frames: np.ndarray) -> np.ndarray:
    return preprocess_frames(frames).crops


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    frames, _ = render_session(6.0, fps=30.0, seed=5)
    return np.stack(list(frames))


def test_crops_do_not_change_with_camera_zoom(scene):
    """The same scene filmed with 20 % more pixels per body length gives the same crops (the
    crop is scaled to the body and anti-aliased at a fixed width in crop pixels)."""
    import cv2

    h, w = scene.shape[1:]
    zoomed = np.stack([cv2.resize(f, (round(w * 1.2), round(h * 1.2))) for f in scene])
    a, b = _crops(scene), _crops(zoomed)
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()
    assert diff < 0.01, diff  # of [0, 1]: 0.0067 measured (σ 0.3 crop pixels)
    corr = np.corrcoef(a.reshape(len(a), -1).ravel(), b.reshape(len(b), -1).ravel())[0, 1]
    assert corr > 0.95, corr


def test_crops_do_not_change_with_gain_and_offset(scene):
    """Darker or brighter video, lower contrast: crops are the difference to the floor over
    the animal's contrast, so the same."""
    dim = np.clip(scene * 0.6 + 40, 0, 255).astype(np.uint8)
    a, b = _crops(scene), _crops(dim)
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()
    assert diff < 0.02, diff
