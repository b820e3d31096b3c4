"""A corpus of hostile and odd files against the real upload route and a real worker subprocess.

Each file gets a clear answer, at upload (422) or as the probe job's failure reason; stored
originals stay byte-identical; nothing else in storage changes; nothing is written outside the
storage folder; and the worker keeps serving: a good video uploaded afterwards is processed.
"""

from __future__ import annotations

import hashlib
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import DEEPOF, wait_for
from tests.integration.test_pipeline import finished, stored_file

pytestmark = pytest.mark.slow


def write_video(
    path: Path,
    *,
    frames: int = 30,
    size: tuple[int, int] = (64, 64),
    codec: str = "mpeg4",
    pix_fmt: str | None = None,
    pts_ms: list[int] | None = None,
) -> Path:
    """A small synthetic video (a bright square moving down); ``pts_ms`` for uneven timing."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if pts_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            top = (i * 3) % max(1, height - 8)
            image[top : top + 8, 4:12] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for k in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 44100, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def forge_jpeg_size(source: Path, target: Path, width: int, height: int) -> Path:
    """Rewrite every JPEG frame header (SOF0) of an MJPEG AVI to claim a huge frame size."""
    data = bytearray(source.read_bytes())
    at = data.find(b"\xff\xc0")
    while at >= 0:
        struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)
    target.write_bytes(bytes(data))
    return target


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_hostile_files_fail_clearly_and_change_nothing(
    backend, make_app, workers, shared_data, tmp_path
) -> None:
    from app.core.config import Settings

    client = make_app(backend)
    storage = Settings().files_dir
    experiment = client.post("/api/experiments", json={"name": "Hostile"}).json()
    url = f"/api/experiments/{experiment['id']}/sessions"
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    # Refused at upload: the first bytes are not a video container.
    for name, content, words in (
        ("zero.mp4", b"", "empty"),
        ("notes.mp4", b"mouse 1 rearing at 00:31\n" * 40, "plain text"),
        ("photo.mp4", b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
    ):
        answer = client.post(url, files={"file": (name, content, "video/mp4")})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert name in detail and words in detail and "Accepted containers" in detail, detail
    assert client.get(url).json() == []
    assert not (storage / "originals").exists()
    assert not any((storage / "tmp").iterdir())

    good_small = write_video(corpus / "small.mp4", frames=30)
    truncated = corpus / "truncated.mp4"
    truncated.write_bytes(good_small.read_bytes()[: good_small.stat().st_size * 6 // 10])
    wide = write_video(corpus / "wide.avi", frames=3, size=(4160, 16), codec="mjpeg")
    forged = forge_jpeg_size(
        write_video(corpus / "mjpeg.avi", frames=5, codec="mjpeg"),
        corpus / "forged-size.avi",
        30000,
        30000,
    )
    # Probe outcome per file: the failure reason's words, or None for success.
    cases: dict[str, tuple[Path, list[str] | None]] = {
        "truncated.mp4": (truncated, ["truncated"]),
        "wide.avi": (wide, ["4160x16", "4096", "SYLLABARY_VIDEO_MAX_WIDTH"]),
        "forged-size.avi": (forged, ["damaged"]),
        "one-frame.mp4": (
            write_video(corpus / "one-frame.mp4", frames=1),
            ["only 1 frame", "SYLLABARY_VIDEO_MIN_FRAMES"],
        ),
        "audio.mp4": (write_audio_only(corpus / "audio.mp4"), ["no video stream"]),
        # A real QuickTime file (passes the container check) with a codec not on the list.
        "animation.mov": (
            write_video(corpus / "animation.mov", frames=5, codec="qtrle", pix_fmt="rgb24"),
            ["codec 'qtrle'", "does not accept", "H.264"],
        ),
        # Variable frame rate is legitimate: frame times are kept, frames counted exactly.
        "vfr.mp4": (
            write_video(corpus / "vfr.mp4", frames=6, pts_ms=[0, 33, 100, 120, 250, 400]),
            None,
        ),
        "../../etc/passwd.mp4": (write_video(corpus / "traversal.mp4", frames=12), None),
    }

    workers.start(backend)
    sessions: dict[str, dict[str, Any]] = {}
    for name, (path, _) in cases.items():
        before = tree(storage / "originals") if (storage / "originals").exists() else {}
        answer = client.post(url, files={"file": (name, path.read_bytes(), "video/mp4")})
        assert answer.status_code == 201, (name, answer.text)
        sessions[name] = answer.json()
        after = tree(storage / "originals")
        assert {k: v for k, v in after.items() if k in before} == before  # nothing else changed

    traversal = sessions["../../etc/passwd.mp4"]
    assert traversal["original_filename"] == "passwd.mp4"
    assert not (tmp_path / "etc").exists() and not (storage.parent / "etc").exists()

    for name, (path, words) in cases.items():
        session = sessions[name]
        job = wait_for(lambda s=session: finished(client, s), timeout=120, what=name)
        if words is None:
            assert job["status"] == "succeeded", (name, job, workers.logs()[-3000:])
        else:
            assert job["status"] == "failed", (name, job)
            assert job["attempts"] == 1, (name, job)  # bad input is not retried
            for word in words:
                assert word in job["error"], (name, job["error"])
        original = stored_file(backend, session, client)
        assert original.is_relative_to(storage / "originals")
        assert original.name == f"{session['sha256']}{original.suffix}"
        assert hashlib.sha256(original.read_bytes()).hexdigest() == (
            hashlib.sha256(path.read_bytes()).hexdigest()
        ), name

    vfr = client.get(f"/api/sessions/{sessions['vfr.mp4']['id']}").json()
    assert vfr["frame_count"] == 6 and vfr["duration_s"] == pytest.approx(0.48, abs=0.01)

    # The worker keeps serving: a real video uploaded after the corpus is processed.
    with DEEPOF.open("rb") as fh:
        good = client.post(url, files={"file": (DEEPOF.name, fh, "video/mp4")}).json()
    job = wait_for(lambda: finished(client, good), timeout=120, what="the good video")
    assert job["status"] == "succeeded", (job, workers.logs()[-3000:])
    # Originals are still exactly what was uploaded, after all the processing.
    for name in cases:
        original = stored_file(backend, sessions[name], client)
        assert hashlib.sha256(original.read_bytes()).hexdigest() == sessions[name]["sha256"]
