"""Browser copies keep every frame and its timing, and are playable (H.264 yuv420p, faststart)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest

from model.transcode import transcode_for_browser, write_thumbnail
from model.video import VideoError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
CLIPS = [
    DATA / "dlc-openfield-short" / "m3v1mp4short.mp4",  # yuv444p: browsers cannot play it
    DATA / "deepof-overlay" / "testDLC_video_circular_arena.mp4",  # MPEG-4 Part 2, 25 fps
    DATA / "maushaus-dummy" / "dummy_maushaus.mp4",
]


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_browser_copy_keeps_frames_and_timing(clip: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(clip.read_bytes()).hexdigest()
    out = tmp_path / "web.mp4"
    n = transcode_for_browser(clip, out)
    src_times, out_times = frame_times(clip), frame_times(out)
    assert n == len(src_times) == len(out_times)
    t0, u0 = src_times[0], out_times[0]
    assert max(abs((a - t0) - (b - u0)) for a, b in zip(src_times, out_times, strict=True)) < 1e-3
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: index before the media
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == before  # original untouched
    assert not list(tmp_path.glob("*.partial"))


def test_thumbnail_is_a_jpeg(tmp_path: Path) -> None:
    out = tmp_path / "thumb.jpg"
    write_thumbnail(CLIPS[1], out, width=160)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


def test_damaged_input_leaves_no_partial_copy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="not a video"):
        transcode_for_browser(bad, tmp_path / "web.mp4")
    assert not (tmp_path / "web.mp4").exists()
    assert not list(tmp_path.glob("*.partial"))
