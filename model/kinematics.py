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
- body length and area relative to the session's median (stretched out, hunched, reared).

Scalars are smoothed over a few frames first: centroid differences carry pixel noise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import gaussian_filter1d

KINEMATIC_NAMES = ("log_speed", "turn_rate", "stretch", "area_ratio")
_SMOOTH_SIGMA = 1.5  # frames


def _smooth(v: np.ndarray, sigma: float = _SMOOTH_SIGMA) -> np.ndarray:
    # Gaussian kernel of radius 4 frames at σ = 1.5 (truncate 2.9); edges held.
    return gaussian_filter1d(v, sigma, mode="nearest", truncate=2.9) if v.size >= 3 else v


def from_scalars(scalars: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, 4) float32 kinematics from a session's preprocessing scalars.

    Needs ``speed`` (px/s), ``angular_velocity`` (rad/s), ``body_length`` (px) and ``area``
    (px²), as written by :func:`model.preprocess.preprocess_video`.
    """
    missing = [k for k in ("speed", "angular_velocity", "body_length", "area") if k not in scalars]
    if missing:
        raise ValueError(f"preprocessing scalars lack {', '.join(missing)}; re-run preprocessing")
    speed = np.nan_to_num(np.asarray(scalars["speed"], dtype=np.float64))
    turn = np.nan_to_num(np.asarray(scalars["angular_velocity"], dtype=np.float64))
    length = np.nan_to_num(np.asarray(scalars["body_length"], dtype=np.float64))
    area = np.nan_to_num(np.asarray(scalars["area"], dtype=np.float64))
    if speed.size == 0:
        return np.zeros((0, len(KINEMATIC_NAMES)), dtype=np.float32)
    body = float(np.median(length[length > 0])) if (length > 0).any() else 1.0
    typical_area = float(np.median(area[area > 0])) if (area > 0).any() else 1.0
    out = np.stack(
        [
            np.log1p(_smooth(speed) / max(body, 1.0)),
            np.arcsinh(_smooth(turn) / (2 * np.pi)),
            _smooth(length) / max(body, 1.0) - 1.0,
            _smooth(area) / max(typical_area, 1.0) - 1.0,
        ],
        axis=1,
    )
    return out.astype(np.float32)


def standardizer(sessions: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per kinematic over the training sessions (kept in the model)."""
    allk = np.concatenate([np.asarray(s, dtype=np.float64) for s in sessions])
    mean = allk.mean(0)
    std = np.maximum(allk.std(0), 1e-3)
    return [float(v) for v in mean], [float(v) for v in std]
