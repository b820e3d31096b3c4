"""Sessions filmed at another frame rate, presented to a model at its own rate.

A syllable is a piece of dynamics: the model's linear dynamics and its HMM's dwell times are
per *step*. Shown a 15 fps session, a model fitted at 30 fps would see every movement twice as
fast and every bout half as long (in steps), and its syllables would split by frame rate. Real
labs film at 15, 25 and 30 fps, often within one experiment, so each session is resampled to
the model's rate before it is fitted or segmented, and the syllables are carried back to the
session's own frames afterwards: durations in seconds do not change.

Crops at an in-between time are the blend of the two nearest frames (egocentric crops of
consecutive frames are close, so the blend is a pose in between); scalars are interpolated
linearly (the heading unwrapped first); quality codes take the nearest frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model.features import Features

# Rates closer than this (relative) are the same rate: 29.97 is 30.
SAME_RATE = 0.01


def model_rate(rates: list[float]) -> float:
    """The frame rate a model is fitted at: the most common of its sessions' rates (rates
    within 1 % count as one; a tie goes to the higher rate, so no session loses frames)."""
    if not rates:
        raise ValueError("no sessions to take a frame rate from")
    groups: list[list[float]] = []
    for r in sorted(rates, reverse=True):
        for g in groups:
            if not needs_resampling(r, g[0]):
                g.append(r)
                break
        else:
            groups.append([r])
    best = max(groups, key=len)  # max keeps the first (highest-rate) group on a tie
    return float(np.median(best))


def needs_resampling(fps: float, target_fps: float) -> bool:
    return abs(fps - target_fps) > SAME_RATE * target_fps


def at_rate(features: Features, target_fps: float) -> tuple[Features, np.ndarray]:
    """``features`` at ``target_fps`` and, for each of the session's own frames, the index of
    the resampled frame at its time (to carry labels back). Unchanged at the same rate."""
    n = features.n_frames
    if not needs_resampling(features.fps, target_fps) or n < 2:
        return features, np.arange(n)
    t0 = float(features.times[0]) if len(features.times) else 0.0
    # The session's own frame times, evenly spaced when its timestamps are not usable.
    times = np.asarray(features.times, dtype=np.float64)
    if len(times) != n or not np.all(np.diff(times) > 0):
        times = t0 + np.arange(n) / features.fps
    m = max(2, int(np.floor((times[-1] - t0) * target_fps)) + 1)
    new_times = t0 + np.arange(m) / target_fps
    # Position of each new time among the old frames: frame lo, then weight w towards lo + 1.
    pos = np.interp(new_times, times, np.arange(n, dtype=np.float64))
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    w = (pos - lo).astype(np.float32)
    crops = np.empty((m, *features.crops.shape[1:]), dtype=features.crops.dtype)
    block = 4096  # an hour of crops is never one float copy
    for i in range(0, m, block):
        sl = slice(i, i + block)
        a = np.asarray(features.crops[lo[sl]], dtype=np.float32)
        b = np.asarray(features.crops[lo[sl] + 1], dtype=np.float32)
        blend = a + (b - a) * w[sl, None, None]
        crops[sl] = np.rint(blend) if crops.dtype == np.uint8 else blend
    scalars = {}
    for name, v in features.scalars.items():
        v = np.asarray(v, dtype=np.float64)
        unwrap = name == "heading"
        src = np.unwrap(v) if unwrap else v
        out = np.interp(new_times, times, src)
        scalars[name] = np.angle(np.exp(1j * out)) if unwrap else out
    nearest = np.clip(np.rint(pos).astype(np.int64), 0, n - 1)
    quality = np.asarray(features.quality)[nearest]
    back = np.clip(np.rint((times - t0) * target_fps).astype(np.int64), 0, m - 1)
    summary = {**features.summary, "fps": target_fps, "frames": m}
    resampled = dataclasses.replace(
        features,
        crops=crops,
        scalars=scalars,
        quality=quality,
        times=new_times,
        fps=float(target_fps),
        summary=summary,
    )
    return resampled, back
