"""Pass 1: the background model from frames sampled over the whole video, the polarity,
contrast, noise and the body's size."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import av
import cv2
import numpy as np

from model.body import body_scale, typical_area
from model.preprocess.common import (
    _MAX_SAMPLES,
    _MIN_KEY_SAMPLES,
    _MIN_SAMPLES,
    _SAMPLE_BYTES,
    MIN_FRAMES,
    BackgroundModel,
    Detection,
    TooShortError,
)
from model.preprocess.detect import _K3, _downscale, detect_mouse, signed_difference
from model.video import (
    _LUMA_FORMATS,
    VideoError,
    _luma_plane,
    _open,
    _video_stream,
    iter_frames,
    skip_deblocking,
)


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
