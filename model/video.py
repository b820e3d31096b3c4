"""Video I/O: probe a file and stream its frames with exact presentation times.

Everything here streams: a one-hour video never sits in memory. Decoding goes through PyAV
(FFmpeg), which reads MP4/H.264 (yuv420p and yuv444p), AVI/MJPEG, MPEG-4 Part 2 and MOV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

# Codecs we accept as input: what top-down lab cameras and common converters write.
ALLOWED_CODECS = frozenset(
    {
        "h264",
        "hevc",
        "mpeg4",
        "mjpeg",
        "mpeg2video",
        "mpeg1video",
        "vp8",
        "vp9",
        "av1",
        "rawvideo",
        "png",
        "ffv1",
        "msmpeg4v2",
        "msmpeg4v3",
        "h263",
        "prores",
        "dnxhd",
        "huffyuv",
        "cinepak",
    }
)


class VideoError(ValueError):
    """A file that cannot be used as a video. The message says what is wrong and what to do."""


class VideoLimitExceeded(VideoError):
    """A readable video outside the configured limits; ``limit`` names which one."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class VideoLimits:
    """What a probe accepts: frame size in pixels, duration in seconds, frame counts."""

    max_width: int = 4096
    max_height: int = 4096
    max_duration_s: float = 24 * 3600.0
    max_frames: int = 10_000_000
    min_frames: int = 2


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video. Times in seconds, sizes in pixels."""

    frame_count: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    pix_fmt: str
    container: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _open(path: str | os.PathLike[str], name: str | None = None) -> Any:
    """Open a container; errors name the file as the user knows it (``name``)."""
    p = Path(path)
    label = name or p.name
    if not p.exists():
        raise VideoError(f"{label}: file not found.")
    if p.stat().st_size == 0:
        raise VideoError(f"{label} is empty (0 bytes). Upload the video file again.")
    try:
        return av.open(str(p))
    except av.error.InvalidDataError as exc:
        if _looks_like_mp4(p):
            raise VideoError(
                f"{label} starts like an MP4/MOV file but cannot be read: it is probably "
                "truncated (an incomplete upload or copy). Upload the complete file again."
            ) from exc
        raise VideoError(
            f"{label} is not a video file we can read (FFmpeg: {exc.strerror or exc}). "
            "Upload an MP4, AVI, MOV or MKV video."
        ) from exc
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"{label} could not be opened as a video ({exc.strerror or exc}). "
            "The file may be damaged or incomplete; upload it again."
        ) from exc


def _looks_like_mp4(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(12)
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"mdat", b"moov", b"free", b"wide")


def _video_stream(container: Any, name: str) -> Any:
    if not container.streams.video:
        raise VideoError(f"{name} has no video stream (audio only or another kind of file).")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in ALLOWED_CODECS:
        raise VideoError(
            f"{name} uses the video codec '{codec}', which Syllabary does not accept. "
            "Convert it to H.264 MP4 (for example: ffmpeg -i in -c:v libx264 out.mp4)."
        )
    return stream


def probe(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
    limits: VideoLimits | None = None,
) -> VideoInfo:
    """Decode every frame once and report exact frame count, rate, size and codec.

    Container metadata is not trusted for the frame count (it is often wrong or missing); the
    frames are decoded and counted, which also proves the file decodes to its end. ``progress``
    is called with the number of frames decoded so far, every 500 frames. ``name`` is the file
    name the user knows (uploads are stored under their checksum), used in error messages.
    """
    p = Path(path)
    label = name or p.name
    limits = limits or VideoLimits()
    container = _open(p, label)
    try:
        stream = _video_stream(container, label)
        stream.thread_type = "AUTO"
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_declared(container, stream, label, limits)
        n = 0
        first_pts: float | None = None
        last_pts: float | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                    first_pts = t if first_pts is None else first_pts
                    last_pts = t
                n += 1
                if n > limits.max_frames:
                    raise VideoLimitExceeded(
                        f"{label} has more than {limits.max_frames} frames, the most accepted.",
                        limit="max_frames",
                    )
                if progress is not None and n % 500 == 0:
                    progress(n)
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{label} is damaged after frame {n} ({exc.strerror or exc}). "
                "The file may be truncated; upload the complete file again."
            ) from exc
        if n == 0:
            raise VideoError(
                f"{label} contains no decodable video frames. The file may be truncated or "
                "damaged; upload the complete file again."
            )
        if n < limits.min_frames:
            raise VideoLimitExceeded(
                f"{label} has only {n} frame{'s' if n != 1 else ''}; behaviour needs a video of "
                f"at least {limits.min_frames} frames. Upload the whole recording.",
                limit="min_frames",
            )
        fps = _frame_rate(stream)
        if first_pts is not None and last_pts is not None and n > 1:
            # Span of presentation times plus one frame period: the length a player shows.
            duration = (last_pts - first_pts) * n / (n - 1)
        else:
            duration = n / fps if fps > 0 else 0.0
        if duration > limits.max_duration_s:
            raise _too_long(label, duration, limits)
        return VideoInfo(
            frame_count=n,
            fps=fps,
            duration_s=round(duration, 6),
            width=int(width),
            height=int(height),
            codec=codec,
            pix_fmt=str(stream.codec_context.pix_fmt),
            container=str(container.format.name),
        )
    finally:
        container.close()


def _check_declared(container: Any, stream: Any, label: str, limits: VideoLimits) -> None:
    """Refuse from the headers alone what is too big, before a single frame is decoded (a
    forged frame size must not make the decoder allocate gigabytes)."""
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    for size, most, limit, what in (
        (width, limits.max_width, "max_width", "wide"),
        (height, limits.max_height, "max_height", "high"),
    ):
        if size > most:
            raise VideoLimitExceeded(
                f"{label} has frames of {width}x{height} pixels; the most accepted is "
                f"{limits.max_width}x{limits.max_height} ({size} px {what} is over {most}).",
                limit=limit,
            )
    declared = float(container.duration) / 1_000_000 if container.duration else 0.0
    if declared > limits.max_duration_s:
        raise _too_long(label, declared, limits)
    if stream.frames and int(stream.frames) > limits.max_frames:
        raise VideoLimitExceeded(
            f"{label} declares {int(stream.frames)} frames; the most accepted is "
            f"{limits.max_frames}.",
            limit="max_frames",
        )


def _too_long(label: str, seconds: float, limits: VideoLimits) -> VideoLimitExceeded:
    return VideoLimitExceeded(
        f"{label} lasts {seconds / 3600:.1f} h; the longest accepted is "
        f"{limits.max_duration_s / 3600:.1f} h. Split the recording into shorter files.",
        limit="max_duration_s",
    )


def _frame_rate(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            value = float(Fraction(rate))
            if math.isfinite(value) and value > 0:
                return value
    return 0.0


def skip_deblocking(codec: Any) -> None:
    """Tell a decoder not to run its deblocking (loop) filter: H.264 and HEVC decode about 25%
    faster (tracktor clip: 5.1 instead of 6.8 CPU seconds for 11 minutes); pixels differ at 8x8
    block edges, and the differences carry on to later frames until a key frame (0.3 to 1.4
    grey levels on average on the clips measured). Preprocessing finds a mouse of
    thousands of pixels and area-averages its crop, so it does not need the filter; the video
    people watch is decoded with it. A generic decoder option: codecs without such a filter
    (MJPEG, MPEG-4 part 2) ignore it. Call before the first frame is decoded."""
    codec.options = {**codec.options, "skip_loop_filter": "all"}


def iter_frames(
    path: str | os.PathLike[str],
    *,
    gray: bool = True,
    luma: bool = False,
    deblock: bool = True,
    threads: int = 0,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(frame_index, time_s, image)`` for every decoded frame, in order.

    ``frame_index`` counts from 0 over decoded frames; ``time_s`` is the frame's presentation
    time relative to the first frame. ``image`` is ``(H, W)`` uint8 when ``gray`` else
    ``(H, W, 3)`` uint8 RGB.

    ``luma=True`` (with ``gray``) yields the decoder's own 8-bit luma plane without colour
    conversion: about 3x faster than ``gray`` (whose swscale range conversion costs more than
    decoding), but in the file's video range (often 16-235). Meant for preprocessing, which
    normalises contrast itself. Formats without an 8-bit luma plane fall back to ``gray``.

    ``deblock=False`` skips the decoder's in-loop deblocking filter (see :func:`skip_deblocking`).
    ``threads``: decoder threads (0: FFmpeg's choice, about one per core).
    """
    p = Path(path)
    container = _open(p)
    try:
        stream = _video_stream(container, p.name)
        stream.thread_type = "AUTO"
        if threads > 0:
            stream.codec_context.thread_count = threads
        if not deblock:
            skip_deblocking(stream.codec_context)
        fps = _frame_rate(stream) or 30.0
        fmt = "gray" if gray else "rgb24"
        t0: float | None = None
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                    t0 = t if t0 is None else t0
                    time_s = t - t0
                else:
                    time_s = index / fps
                if luma and gray and frame.format.name in _LUMA_FORMATS:
                    yield index, time_s, _luma_plane(frame)
                else:
                    yield index, time_s, frame.to_ndarray(format=fmt)
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{p.name} is damaged after frame {index} ({exc.strerror or exc})."
            ) from exc
    finally:
        container.close()


# Pixel formats whose first plane is 8-bit luma (Y), readable without a colour conversion.
_LUMA_FORMATS = frozenset(
    {
        "gray",
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
    }
)


def _luma_plane(frame: Any) -> np.ndarray:
    """The Y plane of a decoded frame as ``(H, W)`` uint8.

    Without line padding this is a view of the decoder's buffer (the array keeps the frame
    alive, so the buffer is not reused under it); with padding it is copied out.
    """
    plane = frame.planes[0]
    buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    if plane.line_size == plane.width:
        return buf
    return np.ascontiguousarray(buf[:, : plane.width])
