"""Pass 2 and the public entry points: every frame tracked, cropped and measured."""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from model.preprocess.background import _shift, _too_short_message, build_background, sample_frames
from model.preprocess.common import (
    _MAX_SAMPLES,
    _SCAN_EVERY,
    MIN_FRAMES,
    QUALITY_NO_MOUSE,
    QUALITY_OK,
    QUALITY_SEVERAL_BLOBS,
    BackgroundModel,
    Preprocessed,
    TooShortError,
)
from model.preprocess.detect import _crop_u8, count_blobs, detect_mouse
from model.preprocess.heading import _fill, resolve_heading
from model.video import (
    _frame_rate,
    _open,
    _video_stream,
    iter_frames,
)


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
