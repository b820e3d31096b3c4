"""Shared definitions of preprocessing: quality codes, scalar names, crop framing, and the
background model, detections and per-video results that the stages pass on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from model.video import (
    VideoError,
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
# Anti-aliasing before the crop is cut, Gaussian σ in crop pixels: enough to make crops of a
# zoomed camera look alike (bench/invariance.py, zoom pair), little enough to keep the fine
# motion the model segments by (at 0.6 the synthetic segmentation ARI fell from 0.82 to 0.75).
_CROP_BLUR = 0.3
#: How crops are framed. 1: side 1.5x the median body length of the sampled frames, 1x or 2x
#: supersampling by crop size (sessions ingested before 2026-12-07); 2: side 1.5x the length
#: scale of the body's typical area (:mod:`model.body`), anti-aliased with σ 0.6 crop pixels;
#: 3: the same with σ 0.3. A model only segments sessions framed as its training sessions
#: were (``FittedModel.summary``); a fit preprocesses older sessions again.
CROP_FRAMING = 3
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

def unit_float(crops: np.ndarray) -> np.ndarray:
    """uint8 crops (0-255) as float32 in [0, 1], what the model takes; divided in place, so an
    hour of crops costs one float copy (450 MB), not two."""
    out = np.asarray(crops).astype(np.float32)
    out /= np.float32(255.0)
    return out
