"""Probe limits: refused from the headers before decoding, or after counting frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from model.video import VideoLimitExceeded, VideoLimits, probe


def small_video(path: Path, frames: int, size: tuple[int, int] = (32, 32)) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), i * 20 % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("limits", "limit", "words"),
    [
        (VideoLimits(max_width=16), "max_width", "32x32 pixels"),
        (VideoLimits(max_height=31), "max_height", "the most accepted is 4096x31"),
        (VideoLimits(max_frames=5), "max_frames", "the most accepted is 5"),
        (VideoLimits(max_duration_s=0.5), "max_duration_s", "the longest accepted"),
        (VideoLimits(min_frames=11), "min_frames", "only 10 frames"),
    ],
)
def test_each_limit_is_named(tmp_path: Path, limits: VideoLimits, limit: str, words: str) -> None:
    path = small_video(tmp_path / "v.mp4", frames=10)
    with pytest.raises(VideoLimitExceeded) as refused:
        probe(path, name="mouse.mp4", limits=limits)
    assert refused.value.limit == limit
    assert "mouse.mp4" in str(refused.value) and words in str(refused.value)


def test_within_limits_probes_normally(tmp_path: Path) -> None:
    path = small_video(tmp_path / "v.mp4", frames=10)
    info = probe(path, limits=VideoLimits(max_width=32, max_height=32, max_frames=10))
    assert info.frame_count == 10 and (info.width, info.height) == (32, 32)
