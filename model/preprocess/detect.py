"""Pure per-frame functions: the mouse against the background, its moments, the egocentric crop."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from model.preprocess.common import _CROP_BLUR, _SECOND_BLOB, BackgroundModel, Detection


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
