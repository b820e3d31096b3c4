"""Long test videos for benchmarks, made by looping a real clip without re-encoding."""

from __future__ import annotations

from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
TRACKTOR = (REPO / ".." / "shared" / "data" / "tracktor-mouse" / "mouse_video.mp4").resolve()


def looped(src: Path, dst: Path, copies: int) -> Path:
    """Write ``copies`` back-to-back copies of ``src``'s video stream (packets copied)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        packets = [p for p in inp.demux(in_stream) if p.size]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        dts_span = span
        for c in range(copies):
            for p in packets:
                p.stream = out_stream
                p.pts = p.pts + c * span if p.pts is not None else None
                p.dts = p.dts + c * dts_span if p.dts is not None else None
                out.mux(p)
                p.pts = p.pts - c * span if p.pts is not None else None
                p.dts = p.dts - c * dts_span if p.dts is not None else None
    return dst
