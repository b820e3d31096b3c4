"""Head/tail disambiguation over a whole track (a two-state Viterbi pass)."""

from __future__ import annotations

import math

import numpy as np


def resolve_heading(
    axis: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    asymmetry: np.ndarray,
    valid: np.ndarray,
    *,
    body_length: float,
    fps: float,
    flip_cost: float = 12.0,
) -> np.ndarray:
    """Heading (rad) per frame from body-axis angles that are only known up to 180°.

    ``axis``, ``x``, ``y``, ``asymmetry``, ``valid``: (T,) per-frame detections (invalid frames
    are ignored as evidence). Two-state Viterbi over "heading = axis" / "heading = axis + π":
    a transition costs ``flip_cost·(1 - cos Δ)/2`` for the turn Δ it implies, so the sign stays
    continuous while the mouse turns; motion along the axis and the mass asymmetry are unary
    evidence in [-1, 1] per frame. The asymmetry's sign convention (does the heavier end lead?)
    is learned from the frames where the mouse moves, so it adapts to the camera and strain.
    """
    t_len = len(axis)
    if t_len == 0:
        return np.zeros(0)
    axis = np.where(valid, axis, np.nan)
    axis = _fill(axis)
    axis = np.where(np.isnan(axis), 0.0, axis)
    ux, uy = np.cos(axis), np.sin(axis)

    # Velocity over ±2 frames, in body lengths per second.
    xs, ys = _fill(np.where(valid, x, np.nan)), _fill(np.where(valid, y, np.nan))
    xs = np.where(np.isnan(xs), 0.0, xs)
    ys = np.where(np.isnan(ys), 0.0, ys)
    k = min(2, max(1, (t_len - 1) // 2)) if t_len > 2 else 0
    vx = np.zeros(t_len)
    vy = np.zeros(t_len)
    if k > 0:
        vx[k:-k] = (xs[2 * k :] - xs[: -2 * k]) / (2 * k)
        vy[k:-k] = (ys[2 * k :] - ys[: -2 * k]) / (2 * k)
    speed_bl = np.hypot(vx, vy) * fps / max(body_length, 1.0)
    along = (vx * ux + vy * uy) / np.maximum(np.hypot(vx, vy), 1e-9)
    # Walking (≥ 1 body length/s) straight along the axis gives full weight.
    motion = along * np.clip((speed_bl - 0.3) / 0.7, 0.0, 1.0) * valid

    asym = np.where(valid, np.tanh(np.nan_to_num(asymmetry) * 2.0), 0.0)
    # With the tail trimmed, a mouse is egg-shaped: the narrow (nose) end extends further from
    # the centroid, so the third moment points to the head (measured on the tracktor and deepof
    # clips). Where the mouse moves enough, the convention and its weight are re-learned from
    # the video itself (a tail that survives the opening would reverse it).
    convention, weight = 1.0, 0.3
    moving = np.abs(motion) > 0.5
    if moving.sum() >= 30:
        corr = float(np.mean(np.sign(motion[moving]) * asym[moving]))
        if abs(corr) > 0.05:
            convention, weight = math.copysign(1.0, corr), min(0.5, abs(corr) * 2.0)
    asym_vote = convention * weight * asym
    evidence = motion + asym_vote  # > 0 favours heading = axis

    # Cost of staying vs switching branch between frames t-1 and t.
    dot = np.cos(axis[1:] - axis[:-1])
    stay = flip_cost * (1.0 - dot) / 2.0
    switch = flip_cost * (1.0 + dot) / 2.0
    sign = _viterbi2(-evidence, evidence, stay, switch)
    heading = axis + np.where(sign == 1, math.pi, 0.0)
    return np.arctan2(np.sin(heading), np.cos(heading))


def _viterbi2(
    cost0: np.ndarray, cost1: np.ndarray, stay: np.ndarray, switch: np.ndarray
) -> np.ndarray:
    """Minimum-cost path of a two-state chain; plain floats because T steps of numpy scalars
    would cost ten times more."""
    t_len = len(cost0)
    c0l, c1l, stl, swl = cost0.tolist(), cost1.tolist(), stay.tolist(), switch.tolist()
    back = bytearray(t_len)  # bit 0: predecessor of state 0; bit 1: of state 1
    a, b = c0l[0], c1l[0]
    for t in range(1, t_len):
        st, sw = stl[t - 1], swl[t - 1]
        a0, a1 = a + st, b + sw
        b0, b1 = a + sw, b + st
        bits = 0
        if a1 < a0:
            na = a1
            bits |= 1
        else:
            na = a0
        if b1 < b0:
            nb = b1
            bits |= 2
        else:
            nb = b0
        a, b = na + c0l[t], nb + c1l[t]
        back[t] = bits
    out = np.zeros(t_len, dtype=np.int8)
    state = 0 if a <= b else 1
    for t in range(t_len - 1, -1, -1):
        out[t] = state
        if t > 0:
            state = (back[t] >> state) & 1
    return out


def _fill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs, then back-fill the leading ones."""
    a = np.asarray(a, dtype=np.float64)
    ok = ~np.isnan(a)
    if not ok.any():
        return a.copy()
    idx = np.where(ok, np.arange(len(a)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    first = int(np.argmax(ok))
    out[:first] = a[first]
    return out
