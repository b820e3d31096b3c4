"""Preprocessing: from a top-down mouse video to egocentric crops and per-frame pose scalars.

This is the step that makes syllables mean *what the mouse does* rather than *where it is*
(svae.md §7.2): the mouse is found against a background model, centred, rotated so that its nose
points to the right, and cut out as a small crop; position and heading leave the image and become
per-frame scalars.

Two streaming passes over the file, so a one-hour video never sits in memory:

1. **Background model** from 12-150 frames spread over the whole video (only sampled key-frame
   packets are decoded when there are enough key frames: a few percent of a full decode). The
   mouse is located in each sample and masked out, and each pixel takes the median of the
   samples where no mouse covered it, so a mouse that rests in one place for a while does not
   become part of the floor. The same samples decide the polarity (dark mouse on a light floor,
   or bright mouse as in depth video), the contrast, the noise level and the typical body
   length, which sets the search window, the tail-trimming kernel and the crop scale.
2. **Per frame** (decoding runs in a second thread): a global exposure change is undone first
   (auto exposure, lights; the samples of pass 1 get the same treatment); then the signed
   difference to the background in a window around the last position (a full-frame search at
   reduced resolution only when the mouse is lost, and every half second to notice other
   animals), threshold, opening (which also trims the tail), largest blob, intensity-weighted
   moments: centroid, body axis, length, width, area and the mass asymmetry along the axis;
   then the egocentric crop.

Head/tail: the body axis only gives the heading up to 180°. :func:`resolve_heading` picks the sign
per frame with a two-state Viterbi pass: flipping between consecutive frames costs as much as
the implied turn, and the direction of motion (mice mostly move forward) and the body's mass
asymmetry (the narrow nose end reaches further from the centroid; the convention is re-learned
from the moving frames of each video) vote.

Conventions: pixel coordinates with x to the right and y down; ``heading`` is
``atan2(dy, dx)`` in those coordinates (radians in (-π, π]), so positive angular velocity is a
clockwise turn on screen. Crops are ``(S, S)`` float32 in [0, 1], the mouse bright on dark
whatever the input polarity, nose towards +x (right), centred on the centroid.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import av
import cv2
import numpy as np

from model.body import body_scale, typical_area
from model.video import (
    _LUMA_FORMATS,
    VideoError,
    _frame_rate,
    _luma_plane,
    _open,
    _video_stream,
    iter_frames,
    skip_deblocking,
)

QUALITY_OK = 0
QUALITY_NO_MOUSE = 1
QUALITY_SEVERAL_BLOBS = 2
QUALITY_NAMES = ("ok", "no_mouse", "several_blobs")

#: Fewer frames than this cannot give a background model, let alone behaviour.
MIN_FRAMES = 16

SCALAR_NAMES = ("x", "y", "heading", "speed", "angular_velocity", "body_length", "area")

_MAX_SAMPLES = 150
_MIN_SAMPLES = 25
_MIN_KEY_SAMPLES = 12  # fewer key frames than this: sample a full decode instead
_SAMPLE_BYTES = 100_000_000  # cap on the memory held by background samples
_CROP_SCALE = 1.5  # crop side in units of the body's length scale (tail trimmed)
_CROP_BLUR = 0.6  # anti-aliasing before the crop is cut, Gaussian σ in crop pixels
#: How crops are framed. 1: side 1.5x the median body length of the sampled frames, 1x or 2x
#: supersampling by crop size (sessions ingested before 2026-12-07); 2: side 1.5x the length
#: scale of the body's typical area (:mod:`model.body`), anti-aliased at a fixed width. A model
#: only segments sessions framed as its training sessions were (``FittedModel.summary``).
CROP_FRAMING = 2
_SCAN_EVERY = 15  # frames between full-frame scans for other animals
_SECOND_BLOB = 0.5  # a blob half the mouse's area or more counts as another animal


class TooShortError(VideoError):
    """A video with too few frames to build a background model or to segment."""


@dataclass(frozen=True)
class BackgroundModel:
    """What pass 1 learns about a video. Grey levels are those of the decoded luma."""

    image: np.ndarray  # (H, W) uint8, the empty arena
    polarity: str  # "dark": mouse darker than the floor; "bright": lighter (depth video)
    contrast: float  # typical |mouse - floor|, grey levels
    noise: float  # robust standard deviation of frame - background, grey levels
    threshold: float  # |difference| above which a pixel belongs to the mouse
    body_length: float  # the mouse's length scale, px (:func:`body_scale` of ``body_area``)
    body_area: float  # typical mouse area (the mode, :func:`typical_area`), px²
    scale: int  # downscale factor of the full-frame search
    small: np.ndarray = field(repr=False)  # background downscaled by ``scale``
    provisional: bool = False  # body size not measured yet: no upper bound on blob size

    @property
    def max_area(self) -> float:
        """Blobs larger than this are not the mouse (a hand, a shadow), px²."""
        return math.inf if self.provisional else 6.0 * self.body_area

    @cached_property
    def smooth(self) -> np.ndarray:
        """The background blurred at the scale of floor texture (bedding, grain), used inside
        the mouse, where the floor's texture would otherwise print through the crop."""
        sigma = max(1.0, 0.08 * self.body_length)
        return cv2.GaussianBlur(self.image, (0, 0), sigma)

    @cached_property
    def crop_side(self) -> float:
        """Side of the square (in source pixels) that a crop covers."""
        return max(16.0, _CROP_SCALE * self.body_length)

    @cached_property
    def search_radius(self) -> int:
        """Half-size of the window searched around the last position, px."""
        return int(0.9 * self.body_length + 16)

    @cached_property
    def window_scale(self) -> int:
        """Downscale factor of the search window: a large mouse is searched at 30-45 px body
        length, where the centroid is still sub-pixel, so the per-frame cost stays flat."""
        return max(1, round(self.body_length / 30.0))

    @cached_property
    def open_kernel(self) -> np.ndarray:
        """Structuring element (at window scale) that removes noise and thin parts (the tail)."""
        k = max(3, math.ceil(0.12 * self.body_length / self.window_scale) | 1)
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


@dataclass(frozen=True)
class Detection:
    """The mouse in one frame. Positions in full-resolution pixels."""

    found: bool
    x: float = math.nan
    y: float = math.nan
    axis: float = math.nan  # body axis angle in [-π/2, π/2): heading up to 180°
    length: float = math.nan  # 4·sqrt(major second moment): nose-to-rump for an ellipse
    width: float = math.nan
    area: float = 0.0  # px²
    asymmetry: float = 0.0  # standardised third moment along +axis direction
    n_blobs: int = 0  # blobs at least _SECOND_BLOB of the largest (1 = just the mouse)


@dataclass
class Preprocessed:
    """Per-frame output of preprocessing for one video (T frames).

    ``crops_u8`` (T, S, S) uint8 crops scaled to 0-255 (``crops``: the same as float32 in
    [0, 1], made on each access: an hour of float crops is 450 MB, so they are stored as bytes);
    ``scalars`` maps each of :data:`SCALAR_NAMES` to a (T,) float64 array (x, y and body_length
    in px, heading in rad, speed in px/s, angular_velocity in rad/s, area in px²); ``quality``
    (T,) int8 codes into :data:`QUALITY_NAMES`; ``times`` (T,) presentation times in s. Frames
    without a mouse hold the last pose and crop.
    """

    crops_u8: np.ndarray
    scalars: dict[str, np.ndarray]
    quality: np.ndarray
    times: np.ndarray
    fps: float
    background: BackgroundModel

    @property
    def crops(self) -> np.ndarray:
        """(T, S, S) float32 in [0, 1], computed from :attr:`crops_u8` on each access."""
        return unit_float(self.crops_u8)

    @property
    def n_frames(self) -> int:
        return int(self.crops_u8.shape[0])

    @property
    def fraction_no_mouse(self) -> float:
        return float(np.mean(self.quality == QUALITY_NO_MOUSE)) if self.n_frames else 0.0

    @property
    def fraction_several_blobs(self) -> float:
        return float(np.mean(self.quality == QUALITY_SEVERAL_BLOBS)) if self.n_frames else 0.0

    def summary(self) -> dict[str, float | int | str]:
        """Figures worth showing a user next to the video."""
        return {
            "frames": self.n_frames,
            "fps": self.fps,
            "polarity": self.background.polarity,
            "fraction_no_mouse": round(self.fraction_no_mouse, 4),
            "fraction_several_blobs": round(self.fraction_several_blobs, 4),
            "median_body_length_px": round(self.background.body_length, 2),
            "body_area_px2": round(self.background.body_area, 2),
            "crop_side_px": round(self.background.crop_side, 2),
            "crop_framing": CROP_FRAMING,
            # Recording conditions the cohort comparison checks for differences between cohorts.
            "floor_brightness": round(float(np.median(self.background.image)), 1),
            "contrast": round(self.background.contrast, 1),
            "noise": round(self.background.noise, 2),
        }


# --------------------------------------------------------------------------------------------
# Pure per-frame functions


def signed_difference(frame: np.ndarray, background: np.ndarray, polarity: str) -> np.ndarray:
    """How much more "mouse-like" each pixel is than the background: uint8, saturating at 0."""
    if polarity == "dark":
        return cv2.subtract(background, frame)
    return cv2.subtract(frame, background)


def _mask(diff: np.ndarray, threshold: float, kernel: np.ndarray) -> np.ndarray:
    _, mask = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)


def _blobs(
    mask: np.ndarray,
    min_area: float,
    max_area: float = math.inf,
    cut: tuple[bool, bool, bool, bool] | None = None,
) -> tuple[np.ndarray | None, int]:
    """Outer contour of the largest blob with an area in [min_area, max_area] (None when there
    is none) and how many blobs, of any size above, are at least :data:`_SECOND_BLOB` of its
    size (a hand reaching in counts too). ``cut`` (left, top, right, bottom) marks mask edges
    that cut through the image: a blob touching one is only partly seen, so it is chosen only
    when no whole blob qualifies. Contours, not labelled components: ten times cheaper, and
    holes in the blob do not matter."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None, 0
    # Polygon area misses about half the boundary pixels; add them back for a pixel count.
    areas = [cv2.contourArea(c) + 0.5 * cv2.arcLength(c, True) for c in contours]
    sized = [i for i, a in enumerate(areas) if min_area <= a <= max_area]
    if cut is not None and any(cut):
        h, w = mask.shape
        whole = [i for i in sized if not _touches(cv2.boundingRect(contours[i]), w, h, cut)]
        sized = whole or sized
    if not sized:
        return None, 0
    best = max(sized, key=areas.__getitem__)
    limit = max(min_area, _SECOND_BLOB * areas[best])
    return contours[best], sum(a >= limit for a in areas)


def _touches(rect: Sequence[int], w: int, h: int, cut: tuple[bool, ...]) -> bool:
    bx, by, bw, bh = rect
    left, top, right, bottom = cut
    return (
        (left and bx == 0)
        or (top and by == 0)
        or (right and bx + bw == w)
        or (bottom and by + bh == h)
    )


def _window(cx: float, cy: float, r: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0 = max(0, int(cx) - r)
    y0 = max(0, int(cy) - r)
    return x0, y0, min(w, int(cx) + r + 1), min(h, int(cy) + r + 1)


def _measure(
    diff: np.ndarray, contour: np.ndarray, x0: int, y0: int, n: int, f: int = 1
) -> Detection:
    """Intensity-weighted moments of one blob (weights = signed difference inside it), in a
    window at (x0, y0) downscaled by ``f`` (pixel j covers source pixels j·f .. j·f + f - 1)."""
    bx, by, bw, bh = cv2.boundingRect(contour)
    fill = np.zeros((bh, bw), dtype=np.uint8)
    cv2.drawContours(fill, [contour], 0, 255, thickness=-1, offset=(-bx, -by))
    sub = diff[by : by + bh, bx : bx + bw]
    weights = cv2.bitwise_and(sub, fill)
    m = cv2.moments(weights)
    if m["m00"] <= 0:
        return Detection(found=False)
    cx = m["m10"] / m["m00"]
    cy = m["m01"] / m["m00"]
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    axis = 0.5 * math.atan2(2.0 * mu11, mu20 - mu02)
    common = math.sqrt(max(0.0, (mu20 - mu02) ** 2 / 4.0 + mu11**2))
    lam1 = max(1e-9, (mu20 + mu02) / 2.0 + common)
    lam2 = max(0.0, (mu20 + mu02) / 2.0 - common)
    c, s = math.cos(axis), math.sin(axis)
    # Third central moment of the projection onto the axis direction (c, s).
    m3 = (
        m["mu30"] * c**3 + 3 * m["mu21"] * c**2 * s + 3 * m["mu12"] * c * s**2 + m["mu03"] * s**3
    ) / m["m00"]
    if axis >= math.pi / 2:
        axis -= math.pi
    return Detection(
        found=True,
        x=x0 + (bx + cx) * f + (f - 1) / 2,
        y=y0 + (by + cy) * f + (f - 1) / 2,
        axis=axis,
        length=4.0 * math.sqrt(lam1) * f,
        width=4.0 * math.sqrt(lam2) * f,
        area=float(cv2.countNonZero(fill)) * f * f,
        asymmetry=m3 / lam1**1.5,
        n_blobs=n,
    )


def detect_mouse(
    frame: np.ndarray,
    model: BackgroundModel,
    *,
    near: tuple[float, float] | None = None,
) -> Detection:
    """Find the mouse in one grey frame ``(H, W)`` uint8.

    With ``near`` (x, y of the last position) only a window around it is searched; when the
    mouse is not there (or touches the window's edge) the whole frame is searched at reduced
    resolution and the result refined at full resolution.
    """
    min_area = 0.15 * model.body_area
    kernel = model.open_kernel
    r = model.search_radius
    if near is not None:
        det = _detect_in_window(frame, model, near, r, kernel, min_area, strict=True)
        if det is not None:
            return det
    centre = _coarse_search(frame, model, min_area)
    if centre is None:
        return Detection(found=False)
    det = _detect_in_window(frame, model, centre, r, kernel, min_area, strict=False)
    return det if det is not None else Detection(found=False)


def _detect_in_window(
    frame: np.ndarray,
    model: BackgroundModel,
    centre: tuple[float, float],
    r: int,
    kernel: np.ndarray,
    min_area: float,
    *,
    strict: bool,
) -> Detection | None:
    f = model.window_scale
    x0, y0, x1, y1 = _window(centre[0], centre[1], r, frame.shape)
    x1, y1 = x0 + (x1 - x0) // f * f, y0 + (y1 - y0) // f * f  # whole f x f blocks
    if x1 <= x0 or y1 <= y0:
        return None
    diff = signed_difference(frame[y0:y1, x0:x1], model.image[y0:y1, x0:x1], model.polarity)
    if f > 1:
        diff = cv2.resize(diff, ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
    mask = _mask(diff, model.threshold, kernel)
    h, w = frame.shape[:2]
    cut = (x0 > 0, y0 > 0, x1 < w, y1 < h)
    contour, big = _blobs(mask, min_area / (f * f), model.max_area / (f * f), cut)
    if contour is None:
        return None
    # Only part of the mouse in the window: near the last position that means the mouse moved
    # far, so the caller searches the whole frame.
    if strict and _touches(cv2.boundingRect(contour), diff.shape[1], diff.shape[0], cut):
        return None
    return _measure(diff, contour, x0, y0, big, f)


def _coarse_search(
    frame: np.ndarray, model: BackgroundModel, min_area: float
) -> tuple[float, float] | None:
    """Centre of the largest mouse-like blob in the whole frame, at reduced resolution."""
    s = model.scale
    diff = signed_difference(_downscale(frame, s), model.small, model.polarity)
    contour, _ = _blobs(
        _mask(diff, model.threshold, _K3), min_area / (s * s), model.max_area / (s * s)
    )
    if contour is None:
        return None
    bx, by, bw, bh = cv2.boundingRect(contour)
    return ((bx + bw / 2) * s, (by + bh / 2) * s)


def count_blobs(frame: np.ndarray, model: BackgroundModel) -> int:
    """Mouse-sized blobs in the whole frame (reduced resolution): > 1 means another animal."""
    s = model.scale
    diff = signed_difference(_downscale(frame, s), model.small, model.polarity)
    _, big = _blobs(_mask(diff, model.threshold, _K3), 0.15 * model.body_area / (s * s))
    return big


_K3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def _downscale(image: np.ndarray, s: int) -> np.ndarray:
    if s == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (w // s, h // s), interpolation=cv2.INTER_AREA)


def egocentric_crop(
    frame: np.ndarray,
    model: BackgroundModel,
    x: float,
    y: float,
    heading: float,
    crop_size: int = 32,
) -> np.ndarray:
    """``(S, S)`` float32 crop in [0, 1]: the mouse at the centre, nose to the right (+x).

    Intensity is the signed difference to the background over 1.25x the typical contrast (a
    little headroom, so shading such as a depth mouse rearing is not clipped): the mouse is
    bright on dark whatever the polarity, and the arena's texture is gone.
    """
    return _crop_u8(frame, model, x, y, heading, crop_size).astype(np.float32) * np.float32(
        1.0 / 255.0
    )


def _crop_u8(
    frame: np.ndarray,
    model: BackgroundModel,
    x: float,
    y: float,
    heading: float,
    crop_size: int,
) -> np.ndarray:
    """:func:`egocentric_crop` scaled to 0-255 as uint8: a quarter of the memory for an hour."""
    side = model.crop_side
    n = crop_size
    a = side / n  # source pixels per crop pixel
    c, s = math.cos(heading), math.sin(heading)
    h = (n - 1) / 2.0
    # One warp of the difference image, cut from a window just large enough for any rotation.
    # (Plus the anti-aliasing's reach, so that no crop pixel blends in the window's border.)
    reach = math.ceil(2 * _CROP_BLUR * a)
    x0, y0, x1, y1 = _window(x, y, int(side * 0.71) + 3 + reach, frame.shape)
    patch = frame[y0:y1, x0:x1]
    diff = signed_difference(patch, model.image[y0:y1, x0:x1], model.polarity)
    # Inside the mouse, compare with the smoothed floor: the mouse's own shading, not the
    # texture of the bedding under it. Outside, the exact floor cancels that texture.
    _, inside = cv2.threshold(diff, 0.5 * model.threshold, 255, cv2.THRESH_BINARY)
    smooth = signed_difference(patch, model.smooth[y0:y1, x0:x1], model.polarity)
    diff = cv2.copyTo(smooth, inside, diff)
    # Anti-aliasing of a fixed width in crop pixels, whatever the zoom: a mouse filmed closer
    # gives crops as smooth as one filmed from further away. (Choosing between 1x and 2x
    # supersampling by the crop's size in pixels made a 20 % zoom move one principal component
    # of the crops by two within-behaviour standard deviations.)
    diff = cv2.GaussianBlur(diff, (0, 0), _CROP_BLUR * a)
    # Inverse map: output pixel (u, v) -> source (x, y) = centre + a·R(heading)·(u - h, v - h).
    m = np.array(
        [
            [a * c, -a * s, x - x0 - a * (c * h - s * h)],
            [a * s, a * c, y - y0 - a * (s * h + c * h)],
        ],
        dtype=np.float64,
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    diff = cv2.warpAffine(diff, m, (n, n), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return cv2.convertScaleAbs(diff, alpha=255.0 / max(1.25 * model.contrast, 1.0))


# --------------------------------------------------------------------------------------------
# Head/tail disambiguation over a whole track


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


# --------------------------------------------------------------------------------------------
# Background model (pass 1)


def build_background(samples: np.ndarray) -> BackgroundModel:
    """Background, polarity, contrast, noise and body size from ``(N, H, W)`` uint8 frames.

    The mouse is found in every sample (at reduced resolution, against a per-pixel percentile
    on the floor's side, which already drops a mouse resting somewhere under 15% of the time)
    and masked out; each pixel takes the median of the samples in which no mouse covered it.
    This also removes a mouse that rests longer, or most of the smear of one that barely moves
    in a short clip. Pixels covered in every sample keep the percentile.
    """
    n, h, w = samples.shape
    if n < 2:
        raise TooShortError("At least two frames are needed to model the background.")
    scale = max(1, round(min(h, w) / 240))
    smalls = [_downscale(f, scale) for f in samples]
    small_med = _percentile_image(smalls, 50)  # polarity only: reduced resolution will do
    # Samples taken at another exposure (auto exposure, lights) are brought to the median's.
    offsets = [
        float(np.median(sm[::4, ::4].astype(np.int16) - small_med[::4, ::4])) for sm in smalls
    ]
    if any(abs(o) > 3.0 for o in offsets):
        samples = np.stack([_shift(f, -o) for f, o in zip(samples, offsets, strict=True)])
        smalls = [_shift(sm, -o) for sm, o in zip(smalls, offsets, strict=True)]
        small_med = _percentile_image(smalls, 50)
    # Polarity: which sign of difference forms compact blobs (erode kills lone noise pixels).
    peak_dark = _peak(smalls, small_med, "dark")
    peak_bright = _peak(smalls, small_med, "bright")
    polarity = "dark" if peak_dark >= peak_bright else "bright"
    q = 85 if polarity == "dark" else 15
    # Where the mouse is in each sample, found at reduced resolution (cheap); scaled back up.
    small_stack = np.stack(smalls)
    _, coarse = _fit_model(small_stack, smalls, _percentile_image(small_stack, q), polarity, 1)
    dets = [_upscale_detection(d, scale) for d in coarse]
    # Floor-side percentile of at most 31 samples: pixels no mouse ever covered need no more.
    base = _percentile_image(samples[:: max(1, math.ceil(n / 31))], q)
    image = _masked_median(samples, dets, polarity, base)
    model, _ = _fit_model(samples, smalls, image, polarity, scale)
    return model


def _shift(image: np.ndarray, delta: float) -> np.ndarray:
    """``image + delta`` in uint8, saturating."""
    v = np.full(1, round(abs(delta)), dtype=np.float64)
    return cv2.add(image, v) if delta > 0 else cv2.subtract(image, v)


def _upscale_detection(d: Detection, s: int) -> Detection:
    if not d.found or s == 1:
        return d
    return dataclasses.replace(
        d,
        x=d.x * s + (s - 1) / 2,
        y=d.y * s + (s - 1) / 2,
        length=d.length * s,
        area=d.area * s * s,
    )


def _fit_model(
    samples: np.ndarray, smalls: list[np.ndarray], image: np.ndarray, polarity: str, scale: int
) -> tuple[BackgroundModel, list[Detection]]:
    """Contrast, noise, threshold and body size against one background image."""
    small = _downscale(image, scale)
    contrast = max(_peak(smalls, small, polarity), 1.0)
    residual = [np.abs(sm.astype(np.int16) - small)[::4, ::4].ravel() for sm in smalls]
    noise = float(1.4826 * np.median(np.concatenate(residual)))
    threshold = max(0.3 * contrast, 5.0 * noise, 6.0)

    def make(body_length: float, body_area: float) -> BackgroundModel:
        return BackgroundModel(
            image=image,
            polarity=polarity,
            contrast=contrast,
            noise=noise,
            threshold=threshold,
            body_length=body_length,
            body_area=body_area,
            scale=scale,
            small=small,
        )

    model = dataclasses.replace(make(12.0 * scale, 60.0 * scale * scale), provisional=True)
    dets: list[Detection] = []
    # Twice, since the opening kernel and the minimum area depend on the body size.
    for _ in range(2):
        dets = [detect_mouse(f, model) for f in samples]
        found = [d for d in dets if d.found]
        if len(found) < max(2, len(samples) // 4):
            break
        area = typical_area(np.array([d.area for d in found]))
        model = make(body_scale(area), area)
    return model, dets


def _masked_median(
    samples: np.ndarray, dets: list[Detection], polarity: str, image: np.ndarray
) -> np.ndarray:
    """``image`` with each pixel a detected mouse ever covered replaced by the median of the
    samples where no mouse covered it (pixels covered in every sample keep their value)."""
    found = [(i, d) for i, d in enumerate(dets) if d.found]
    if not found:
        return image
    n, h, w = samples.shape
    masks = np.zeros((n, h, w), dtype=np.uint8)
    for i, d in found:
        # A disc over the whole body, whatever its pose; the tail's faint remainder is harmless.
        cv2.circle(masks[i], (round(d.x), round(d.y)), round(0.75 * d.length + 3), 1, -1)
    union = masks.any(axis=0)
    covered = masks[:, union].astype(bool)  # (N, P)
    values = samples[:, union]
    # Masked samples sort to one end, so the free ones hold ranks [lo, lo + free).
    sentinel = 0 if polarity == "dark" else 255
    ordered = np.sort(np.where(covered, sentinel, values), axis=0)
    n_cov = covered.sum(axis=0)
    free = n - n_cov
    lo = n_cov if polarity == "dark" else np.zeros_like(n_cov)
    rank = np.clip(lo + (free - 1) // 2, 0, n - 1)
    median = np.take_along_axis(ordered, rank[None, :], axis=0)[0]
    out = image.copy()
    out[union] = np.where(free > 0, median, image[union])
    return out


def _peak(smalls: list[np.ndarray], background: np.ndarray, polarity: str) -> float:
    """Median over frames of the strongest compact (3x3) signed difference to a background."""
    peaks = [cv2.erode(signed_difference(f, background, polarity), _K3).max() for f in smalls]
    return float(np.median(peaks))


def _percentile_image(samples: np.ndarray | list[np.ndarray], q: float) -> np.ndarray:
    """Per-pixel q-th percentile of uint8 frames (N, H, W).

    In blocks of pixels laid out pixel-major, so the partition runs over contiguous memory
    (1.5x faster than along axis 0) and memory stays bounded.
    """
    stack = np.asarray(samples)
    n = stack.shape[0]
    k = round((n - 1) * q / 100.0)
    flat = stack.reshape(n, -1)
    out = np.empty(flat.shape[1], dtype=np.uint8)
    block = 65536
    for i in range(0, flat.shape[1], block):
        chunk = np.ascontiguousarray(flat[:, i : i + block].T)
        out[i : i + block] = np.partition(chunk, k, axis=1)[:, k]
    return out.reshape(stack.shape[1:])


def sample_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Up to ~150 grey frames spread over the video, and its packet (≈ frame) count.

    Demuxing is nearly free, so the packets are counted first. If the video has enough key
    frames, only every k-th key-frame packet is handed to the decoder (a key frame decodes
    alone), which costs a few percent of a full decode even for intra-only codecs such as
    MJPEG; otherwise every k-th frame of a full decode is kept (short clips, very long GOPs).
    """
    p = Path(path)
    container = _open(p)
    try:
        stream = _video_stream(container, p.name)
        n_packets = 0
        n_key = 0
        for packet in container.demux(stream):
            if packet.size:
                n_packets += 1
                n_key += bool(packet.is_keyframe)
        w, h = stream.codec_context.width, stream.codec_context.height
    except av.error.FFmpegError as exc:
        raise VideoError(f"{p.name} could not be read ({exc.strerror or exc}).") from exc
    finally:
        container.close()
    if n_packets < MIN_FRAMES:
        raise TooShortError(_too_short_message(p.name, n_packets))
    budget = max(_MIN_SAMPLES, min(_MAX_SAMPLES, _SAMPLE_BYTES // max(1, w * h)))
    frames: list[np.ndarray] = []
    if n_key >= _MIN_KEY_SAMPLES:
        stride = max(1, math.ceil(n_key / budget))
        container = _open(p)
        try:
            stream = _video_stream(container, p.name)
            codec = stream.codec_context
            skip_deblocking(codec)  # as pass 2 decodes, so the background matches its frames
            i = 0
            for packet in container.demux(stream):
                if packet.size and packet.is_keyframe:
                    if i % stride == 0:
                        frames.extend(_gray(f) for f in codec.decode(packet))
                    i += 1
            frames.extend(_gray(f) for f in codec.decode(None))  # frames held back by the decoder
        except av.error.FFmpegError:
            frames = []  # a decoder that will not take key frames alone: use the slow path
        finally:
            container.close()
    if len(frames) < _MIN_KEY_SAMPLES:
        frames = []
        stride = max(1, math.ceil(n_packets / budget))
        for i, _, image in iter_frames(p, luma=True, deblock=False):
            if i % stride == 0:
                frames.append(image)
    return np.stack(frames), n_packets


def _gray(frame: av.VideoFrame) -> np.ndarray:
    # Same values as iter_frames(luma=True), so the background matches the frames of pass 2.
    if frame.format.name in _LUMA_FORMATS:
        return _luma_plane(frame)
    return frame.to_ndarray(format="gray")


def _too_short_message(name: str, n: int) -> str:
    return (
        f"{name} has only {n} frame{'s' if n != 1 else ''}; Syllabary needs at least "
        f"{MIN_FRAMES} frames (about half a second) to find the mouse, and several seconds of "
        "video to segment behaviour. Upload a longer recording."
    )


# --------------------------------------------------------------------------------------------
# Pass 2 and the public entry points


class _Tracker:
    """Accumulates per-frame detections and provisional crops (heading = axis, no sign yet)."""

    def __init__(self, model: BackgroundModel, crop_size: int, capacity: int) -> None:
        self.model = model
        self.crop_size = crop_size
        self.n = 0
        cap = max(capacity, 16)
        self.crops = np.zeros((cap, crop_size, crop_size), dtype=np.uint8)
        self.det = np.full((cap, 8), np.nan)  # x, y, axis, length, width, area, asym, found
        self.blobs = np.zeros(cap, dtype=np.int16)
        self.times = np.zeros(cap)
        self.last: tuple[float, float] | None = None
        self.scan_blobs = 1

    def _grow(self) -> None:
        cap = 2 * len(self.times)
        self.crops = np.concatenate([self.crops, np.zeros_like(self.crops)])[:cap]
        self.det = np.concatenate([self.det, np.full_like(self.det, np.nan)])[:cap]
        self.blobs = np.concatenate([self.blobs, np.zeros_like(self.blobs)])[:cap]
        self.times = np.concatenate([self.times, np.zeros_like(self.times)])[:cap]

    def step(self, time_s: float, frame: np.ndarray) -> None:
        if self.n == len(self.times):
            self._grow()
        i = self.n
        self.times[i] = time_s
        frame = self._match_exposure(frame)
        d = detect_mouse(frame, self.model, near=self.last)
        if i % _SCAN_EVERY == 0:
            self.scan_blobs = count_blobs(frame, self.model)
        if d.found:
            self.det[i] = (d.x, d.y, d.axis, d.length, d.width, d.area, d.asymmetry, 1.0)
            self.blobs[i] = max(d.n_blobs, self.scan_blobs)
            self.crops[i] = _crop_u8(frame, self.model, d.x, d.y, d.axis, self.crop_size)
            self.last = (d.x, d.y)
        else:
            self.det[i, 7] = 0.0
            self.blobs[i] = 0
        self.n += 1

    def _match_exposure(self, frame: np.ndarray) -> np.ndarray:
        """Undo a global brightness change (auto exposure, lights): otherwise a darker frame
        makes the whole floor look like a dark mouse. Measured on a sparse grid, where the
        mouse is a negligible part; frames within a few grey levels are left alone."""
        d = np.subtract(frame[self._grid], self._grid_bg, dtype=np.int16)
        limit = max(3.0, 2.0 * self.model.noise)
        # |median| <= limit whenever at most (n-1)//2 differences lie beyond it on either side
        # (for integers, d > limit iff d > floor(limit)): two counts, a fraction of the cost
        # of the median they make unnecessary on nearly every frame.
        lim, half = math.floor(limit), (d.size - 1) // 2
        if np.count_nonzero(d > lim) <= half and np.count_nonzero(d < -lim) <= half:
            return frame
        offset = float(np.median(d))
        if abs(offset) <= limit:
            return frame
        return _shift(frame, -offset)

    @cached_property
    def _grid(self) -> tuple[slice, slice]:
        h, w = self.model.image.shape
        step = max(1, min(h, w) // 40)
        return (slice(step // 2, h, step), slice(step // 2, w, step))

    @cached_property
    def _grid_bg(self) -> np.ndarray:
        return self.model.image[self._grid].astype(np.int16)

    def finish(self, fps: float) -> Preprocessed:
        n = self.n
        det = self.det[:n]
        found = det[:, 7] == 1.0
        crops = self.crops[:n]
        times = self.times[:n].copy()
        quality = np.where(
            ~found,
            QUALITY_NO_MOUSE,
            np.where(self.blobs[:n] > 1, QUALITY_SEVERAL_BLOBS, QUALITY_OK),
        ).astype(np.int8)
        if found.any():
            # Frames without a mouse hold the last crop (the first ones take the first found).
            idx = np.where(found, np.arange(n), 0)
            np.maximum.accumulate(idx, out=idx)
            first = int(np.argmax(found))
            idx[:first] = first
            crops = crops[idx]
        heading = resolve_heading(
            det[:, 2],
            det[:, 0],
            det[:, 1],
            det[:, 6],
            found,
            body_length=self.model.body_length,
            fps=fps,
        )
        axis = _fill(np.where(found, det[:, 2], np.nan))
        flipped = np.cos(heading - np.nan_to_num(axis)) < 0
        # A 180° turn of an even-sized crop about its centre is a flip of both axes.
        crops[flipped] = crops[flipped][:, ::-1, ::-1]
        x = _fill(np.where(found, det[:, 0], np.nan))
        y = _fill(np.where(found, det[:, 1], np.nan))
        scalars = {
            "x": x,
            "y": y,
            "heading": heading,
            "speed": _speed(x, y, times, fps),
            "angular_velocity": _rate(np.unwrap(heading), times, fps),
            "body_length": _fill(np.where(found, det[:, 3], np.nan)),
            "area": _fill(np.where(found, det[:, 5], np.nan)),
        }
        scalars = {k: np.nan_to_num(v) for k, v in scalars.items()}
        return Preprocessed(
            crops_u8=crops,
            scalars=scalars,
            quality=quality,
            times=times,
            fps=fps,
            background=self.model,
        )


def _rate(v: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    if len(v) < 2 or np.isnan(v).all():
        return np.zeros(len(v))
    t = times if np.all(np.diff(times) > 0) else np.arange(len(v)) / fps
    return np.gradient(np.nan_to_num(v), t)


def _speed(x: np.ndarray, y: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    return np.hypot(_rate(x, times, fps), _rate(y, times, fps))


def preprocess_video(
    path: str | os.PathLike[str],
    *,
    crop_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Preprocessed:
    """Background model, mouse track, heading and egocentric crops for a whole video file.

    Streams the file twice (a cheap key-frame pass, then every frame). ``progress(done,
    total)`` is called every 500 frames; ``total`` is the packet count, which equals the frame
    count for ordinary files. Raises :class:`TooShortError` (a :class:`VideoError`) for videos
    under :data:`MIN_FRAMES` frames and :class:`VideoError` for unreadable ones.
    """
    _check_crop_size(crop_size)
    p = Path(path)
    samples, n_packets = sample_frames(p)
    model = build_background(samples)
    del samples
    fps = _file_fps(p)
    tracker = _Tracker(model, crop_size, n_packets + 16)
    with _opencv_threads(1):
        for i, time_s, frame in _prefetch(tracking_frames(p)):
            tracker.step(time_s, frame)
            if progress is not None and (i + 1) % 500 == 0:
                progress(i + 1, n_packets)
    if tracker.n < MIN_FRAMES:
        raise TooShortError(_too_short_message(p.name, tracker.n))
    if progress is not None:
        progress(tracker.n, max(n_packets, tracker.n))
    return tracker.finish(fps)


def preprocess_frames(
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    fps: float = 30.0,
    crop_size: int = 32,
    model: BackgroundModel | None = None,
) -> Preprocessed:
    """The same pipeline on grey frames in memory ``(T, H, W)`` uint8 (tests, synthetic data).

    The background is built from up to 150 frames spread over the input unless ``model`` is
    given.
    """
    _check_crop_size(crop_size)
    stack = np.asarray(frames if isinstance(frames, np.ndarray) else list(frames))
    if stack.ndim == 4:
        stack = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in stack])
    stack = stack.astype(np.uint8, copy=False)
    if len(stack) < MIN_FRAMES:
        raise TooShortError(_too_short_message("these frames", len(stack)))
    if model is None:
        step = max(1, math.ceil(len(stack) / _MAX_SAMPLES))
        model = build_background(stack[::step])
    tracker = _Tracker(model, crop_size, len(stack))
    with _opencv_threads(1):
        for i, frame in enumerate(stack):
            tracker.step(i / fps, frame)
    return tracker.finish(fps)


def unit_float(crops: np.ndarray) -> np.ndarray:
    """uint8 crops (0-255) as float32 in [0, 1], what the model takes; divided in place, so an
    hour of crops costs one float copy (450 MB), not two."""
    out = np.asarray(crops).astype(np.float32)
    out /= np.float32(255.0)
    return out


def _check_crop_size(crop_size: int) -> None:
    # Even, so that a 180° turn of a crop is an exact flip of both axes (see _Tracker.finish).
    if crop_size < 8 or crop_size % 2:
        raise ValueError("crop_size must be an even number of at least 8 pixels.")


@contextmanager
def _opencv_threads(n: int) -> Iterator[None]:
    """OpenCV's thread pool limited to ``n`` threads inside. The per-frame calls work on
    windows of about 100x100 pixels: split across threads they gain nothing, and the idle
    workers spin, taking a core from the decoding thread (per-frame CPU time was twice the
    wall time with OpenCV's default of one thread per core)."""
    old = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def tracking_frames(path: str | os.PathLike[str]) -> Iterator[tuple[int, float, np.ndarray]]:
    """The frames pass 2 tracks, decoded as it decodes them: luma plane, no deblocking filter,
    :func:`_decode_threads` decoder threads."""
    return iter_frames(path, luma=True, deblock=False, threads=_decode_threads())


def _decode_threads() -> int:
    """Decoder threads while this process tracks the mouse: all cores but the one that tracks.
    On two cores FFmpeg's own choice (frame threads on both) made pass 2 of 11 minutes take
    5.8 s and 9.1 CPU seconds; one decoder thread beside the tracker, 4.2-4.8 s and 6.5-7.2
    CPU seconds (frame threads that share a core with the tracker mostly wait on each other)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, cores - 1)


def _prefetch(
    items: Iterator[tuple[int, float, np.ndarray]], depth: int = 32, batch: int = 8
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode in a second thread while this one processes (FFmpeg and OpenCV release the GIL):
    15-20% faster on two cores. Frames travel in batches of ``batch``, so the queue's locking
    costs little per frame; at most ``depth`` frames wait. Decoder errors are re-raised here."""
    q: queue.Queue = queue.Queue(max(1, depth // batch))
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        # Timed puts, so the thread notices when the consumer has gone away.
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        chunk: list = []
        try:
            for item in items:
                chunk.append(item)
                if len(chunk) == batch:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(end)
        except BaseException as exc:  # handed to the consumer, which raises it
            if not chunk or put(chunk):
                put(exc)

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        thread.join(timeout=5)


def _file_fps(path: Path) -> float:
    container = _open(path)
    try:
        return _frame_rate(_video_stream(container, path.name)) or 30.0
    finally:
        container.close()
