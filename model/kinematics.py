"""Per-frame kinematics the model sees beside the egocentric crops.

Egocentric crops are centred on the mouse and rotated to its heading, so by construction they
no longer show how fast it moves or turns: a walking and a running mouse, or a left and a right
turn with a straight body, can look alike in the crop. The preprocessing step measured those
movements; this module turns them into a few scale-free numbers per frame, comparable across
rigs and zoom levels:

- forward speed in body lengths per second, log-compressed (log1p): a run is several times a
  walk, and a jittery centroid at rest should not look like slow walking;
- angular velocity in turns per second, squashed with arcsinh so single-frame heading jumps
  cannot dominate;
- body length and area relative to the animal's size (stretched out, hunched, reared): the
  size is the mode of the body's area over the session (:func:`model.preprocess.typical_area`),
  which does not move with how often the animal rears or grooms; a session median did, and so
  made every frame of a cohort that rears more look "longer" (recipe 3, see :data:`RECIPES`);
- from the egocentric crops (:func:`head_from_crops`): how far the front half of the body sits
  to one side of the body axis (head sway, in crop widths), and how fast it moves, averaged
  over 0.3 s and log-compressed: sniffing and investigating move the head while the body
  stays put, which the whole-body numbers above cannot see and a small head in a 32-pixel
  crop barely moves the latents (synthetic sniff against pause, per frame: AUC 0.94).

Scalars are smoothed lightly first (centroid differences carry pixel noise), and only lightly:
the model's own state-space smoother does the rest, and pre-smoothing over several frames moved
every syllable boundary (see :data:`RECIPES`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from model.body import body_scale, typical_area

KINEMATIC_NAMES = ("log_speed", "turn_rate", "stretch", "area_ratio")
HEAD_NAMES = ("head_sway", "head_motion")
# What :meth:`model.features.Features.kinematics` gives. Models store how many they were fitted
# with and take that many from the front, so new columns only ever go at the end.
ALL_KINEMATIC_NAMES = KINEMATIC_NAMES + HEAD_NAMES

# How the kinematics are computed: a fitted model records the recipe of its training data
# (SVAEConfig.kin_recipe) and is always given kinematics made the same way. Per recipe: the
# Gaussian σ (frames) of the body scalars and of the head sway, and head_motion's averaging
# window (s). Recipe 1 (models fitted before 2026-11-27) smoothed over ±4 frames and averaged
# head motion over 0.3 s: the features then changed up to 4 frames before a behaviour did, and
# most segmentation errors sat within 3 frames of a true boundary. Recipe 2 smooths half as
# much and leaves the rest to the model, which sees the kinematics with noise (kin_noise 0.3):
# on the synthetic benchmark set, ARI 0.72 -> 0.82 (docs/benchmarks.md, session 9).
# Recipe 3 keeps recipe 2's smoothing and measures the body in units of its typical size (the
# mode of its area) instead of the session's median length and area: on synthetic cohorts that
# differ only in how often they groom, rear and run, the median put "walking" at a stretch 0.3
# within-behaviour standard deviations apart between cohorts (bench/invariance.py).
RECIPES: dict[int, tuple[float, float, float]] = {
    1: (1.5, 1.0, 0.3),
    2: (0.75, 0.5, 0.15),
    3: (0.75, 0.5, 0.15),
}
KINEMATICS_RECIPE = 3  # what new fits use
_FLOOR = 0.15  # crop intensity taken as background when weighing the body's pixels
_BLOCK = 4096  # frames per block: an hour of crops never becomes one float copy


def _recipe(recipe: int) -> tuple[float, float, float]:
    if recipe not in RECIPES:
        raise ValueError(
            f"unknown kinematics recipe {recipe} (known: {sorted(RECIPES)}); the model was "
            "fitted by a newer Syllabary: upgrade to segment with it"
        )
    return RECIPES[recipe]


def _smooth(v: np.ndarray, sigma: float) -> np.ndarray:
    # Gaussian kernel of radius ~3σ (truncate 2.9: radius 4 frames at σ = 1.5); edges held.
    return gaussian_filter1d(v, sigma, mode="nearest", truncate=2.9) if v.size >= 3 else v


def from_scalars(scalars: Mapping[str, np.ndarray], recipe: int = KINEMATICS_RECIPE) -> np.ndarray:
    """(T, 4) float32 kinematics from a session's preprocessing scalars.

    Needs ``speed`` (px/s), ``angular_velocity`` (rad/s), ``body_length`` (px) and ``area``
    (px²), as written by :func:`model.preprocess.preprocess_video`. ``recipe``: see
    :data:`RECIPES` (a model's ``config.kin_recipe``).
    """
    sigma = _recipe(recipe)[0]
    missing = [k for k in ("speed", "angular_velocity", "body_length", "area") if k not in scalars]
    if missing:
        raise ValueError(f"preprocessing scalars lack {', '.join(missing)}; re-run preprocessing")
    speed = np.nan_to_num(np.asarray(scalars["speed"], dtype=np.float64))
    turn = np.nan_to_num(np.asarray(scalars["angular_velocity"], dtype=np.float64))
    length = np.nan_to_num(np.asarray(scalars["body_length"], dtype=np.float64))
    area = np.nan_to_num(np.asarray(scalars["area"], dtype=np.float64))
    if speed.size == 0:
        return np.zeros((0, len(KINEMATIC_NAMES)), dtype=np.float32)
    if recipe >= 3:
        size = typical_area(area) or 1.0
        body = body_scale(size)
    else:
        body = float(np.median(length[length > 0])) if (length > 0).any() else 1.0
        size = float(np.median(area[area > 0])) if (area > 0).any() else 1.0
    out = np.stack(
        [
            np.log1p(_smooth(speed, sigma) / max(body, 1.0)),
            np.arcsinh(_smooth(turn, sigma) / (2 * np.pi)),
            _smooth(length, sigma) / max(body, 1.0) - 1.0,
            _smooth(area, sigma) / max(size, 1.0) - 1.0,
        ],
        axis=1,
    )
    return out.astype(np.float32)


def head_from_crops(
    crops: np.ndarray, fps: float, recipe: int = KINEMATICS_RECIPE
) -> np.ndarray:
    """(T, 2) float32 ``head_sway`` and ``head_motion`` from egocentric crops (T, S, S), uint8
    or float in [0, 1], nose towards +x as :func:`model.preprocess.egocentric_crop` makes them.

    head_sway: intensity-weighted mean row of the body's pixels ahead of its centroid, minus
    the crop's middle row, over the crop side (signed: which side the head is on).
    head_motion: log of its mean absolute rate (crop widths per second) over a short window
    (0.15 s; 0.3 s in recipe 1).
    """
    _, sway_sigma, head_window = _recipe(recipe)
    n = len(crops)
    if n == 0:
        return np.zeros((0, len(HEAD_NAMES)), dtype=np.float32)
    side = crops.shape[-1]
    xs = np.arange(side, dtype=np.float32) - (side - 1) / 2
    ys = np.arange(crops.shape[-2], dtype=np.float32) - (crops.shape[-2] - 1) / 2
    sway = np.empty(n, dtype=np.float64)
    for i in range(0, n, _BLOCK):
        block = np.asarray(crops[i : i + _BLOCK], dtype=np.float32)
        if crops.dtype == np.uint8:
            block = block / 255.0
        w = np.clip(block - _FLOOR, 0.0, None)
        cols = w.sum(1)  # (B, S) weight per column
        total = cols.sum(1) + 1e-6
        cx = (cols * xs).sum(1) / total
        front = w * (xs[None, None, :] > cx[:, None, None])
        rows = front.sum(2)  # (B, S) weight per row, front half only
        sway[i : i + len(block)] = (rows * ys).sum(1) / (rows.sum(1) + 1e-6) / side
    sway = _smooth(sway, sway_sigma)
    rate = np.abs(np.gradient(sway)) * fps if n > 1 else np.zeros(n)
    window = max(1, round(head_window * fps))
    motion = np.log(uniform_filter1d(rate, window, mode="nearest") + 1e-2)
    return np.stack([sway, motion], 1).astype(np.float32)


def standardizer(sessions: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per kinematic over the training sessions (kept in the model)."""
    allk = np.concatenate([np.asarray(s, dtype=np.float64) for s in sessions])
    mean = allk.mean(0)
    std = np.maximum(allk.std(0), 1e-3)
    return [float(v) for v in mean], [float(v) for v in std]
