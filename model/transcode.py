"""Browser copies and thumbnails of uploaded videos.

Browsers play H.264 yuv420p MP4 but not, for example, yuv444p H.264 or MPEG-4 Part 2. The copy
keeps every frame with its presentation time, shifted so the first frame is at 0 s: frame ``i``
of the copy is frame ``i`` of the original and plays at the ethogram's ``time_s`` of that frame.
The original is only read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from model.video import VideoError, _frame_rate, _open, _video_stream


def transcode_for_browser(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    name: str | None = None,
    crf: int = 23,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write an H.264 yuv420p MP4 with ``+faststart`` (playable while downloading).

    Frame count and timing are kept: each output frame carries the input frame's timestamp.
    Width and height are rounded down to even numbers (yuv420p needs them). The file is written
    to a temporary name and moved into place, so a crash never leaves a half-written copy.
    Returns the number of frames written; ``progress`` is called every 250 frames.
    """
    src, dst = Path(src), Path(dst)
    label = name or src.name
    tmp = dst.with_name(dst.name + ".partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    inp = _open(src, label)
    n = 0
    try:
        stream = _video_stream(inp, label)
        stream.thread_type = "AUTO"
        width = stream.codec_context.width // 2 * 2
        height = stream.codec_context.height // 2 * 2
        rate = Fraction(_frame_rate(stream) or 30).limit_denominator(1001)
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.time_base = stream.time_base or Fraction(1, 90000)
            # A keyframe every second keeps seeking in the player fast.
            video.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "g": str(max(1, round(rate))),
                "threads": "0",
            }
            last_pts: int | None = None
            first_pts: int | None = None
            try:
                for frame in inp.decode(stream):
                    out_frame = frame.reformat(width=width, height=height, format="yuv420p")
                    if first_pts is None:
                        first_pts = frame.pts or 0
                    # Start at 0 so the player's currentTime equals the ethogram's time_s.
                    pts = frame.pts - first_pts if frame.pts is not None else (last_pts or 0) + 1
                    if last_pts is not None and pts <= last_pts:
                        pts = last_pts + 1  # keep timestamps strictly increasing
                    out_frame.pts, out_frame.time_base, last_pts = pts, frame.time_base, pts
                    for packet in video.encode(out_frame):
                        out.mux(packet)
                    n += 1
                    if progress is not None and n % 250 == 0:
                        progress(n)
            except av.error.FFmpegError as exc:
                raise VideoError(f"{label} is damaged after frame {n} ({exc}).") from exc
            for packet in video.encode(None):
                out.mux(packet)
        if n == 0:
            raise VideoError(f"{label} contains no decodable video frames.")
        os.replace(tmp, dst)
        return n
    finally:
        inp.close()
        tmp.unlink(missing_ok=True)


def write_thumbnail(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, width: int = 320
) -> None:
    """Save a JPEG of a frame near 10% into the video (past any black lead-in)."""
    import cv2

    src, dst = Path(src), Path(dst)
    inp = _open(src)
    try:
        stream = _video_stream(inp, src.name)
        target = max(0, int((stream.frames or 0) * 0.1))
        image: np.ndarray | None = None
        for i, frame in enumerate(inp.decode(stream)):
            image = frame.to_ndarray(format="bgr24")
            if i >= target:
                break
    finally:
        inp.close()
    if image is None:
        raise VideoError(f"{src.name} has no frames to make a thumbnail from.")
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial.jpg")
    cv2.imwrite(str(tmp), small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    os.replace(tmp, dst)
