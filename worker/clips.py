"""Example clips of each syllable: short MP4s cut from the sessions at the syllable's bouts.

For each syllable we take bouts of typical length (closest to the syllable's median duration),
spread over as many sessions as possible, and cut a square around the mouse from each
session's browser copy, with a few frames of context on either side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from sqlalchemy import Engine, select

from app.core.db import session_factory
from app.core.storage import Storage
from app.experiments.models import VideoSession
from app.syllables.models import Bout, Segmentation

PAD_FRAMES = 6
CLIP_SIDE = 192
MIN_BOUT_FRAMES = 4


def choose_bouts(
    bouts: list[tuple[int, int, int, int]], per_syllable: int
) -> dict[int, list[tuple[int, int, int]]]:
    """From (session_id, start, end, syllable) rows, pick up to ``per_syllable`` bouts per
    syllable: typical lengths first, one session after another (round robin)."""
    by_syllable: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for session_id, start, end, k in bouts:
        if end - start >= MIN_BOUT_FRAMES:
            by_syllable[k].append((session_id, start, end))
    chosen: dict[int, list[tuple[int, int, int]]] = {}
    for k, rows in by_syllable.items():
        median = float(np.median([e - s for _, s, e in rows]))
        per_session: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for row in sorted(rows, key=lambda r: abs((r[2] - r[1]) - median)):
            per_session[row[0]].append(row)
        picked: list[tuple[int, int, int]] = []
        queues = list(per_session.values())
        while len(picked) < per_syllable and any(queues):
            for q in queues:
                if q and len(picked) < per_syllable:
                    picked.append(q.pop(0))
        chosen[k] = picked
    return chosen


def render_model_clips(
    engine: Engine,
    storage: Storage,
    model_id: int,
    *,
    per_syllable: int,
    progress: Callable[[float, str], None] | None = None,
) -> dict[int, list[dict[str, Any]]]:
    from model.features import load

    with session_factory(engine)() as db:
        rows = db.execute(
            select(Segmentation.session_id, Bout.start_frame, Bout.end_frame, Bout.syllable)
            .join(Segmentation, Segmentation.id == Bout.segmentation_id)
            .where(Segmentation.model_id == model_id)
        ).all()
        sessions = {
            s.id: s
            for s in db.scalars(
                select(VideoSession).where(VideoSession.id.in_({r[0] for r in rows}))
            )
        }
    chosen = choose_bouts([tuple(r) for r in rows], per_syllable)  # type: ignore[misc]
    total = sum(len(v) for v in chosen.values()) or 1
    done = 0
    out: dict[int, list[dict[str, Any]]] = {}
    features_cache: dict[int, Any] = {}
    for k, picks in sorted(chosen.items()):
        for j, (session_id, start, end) in enumerate(picks):
            session = sessions[session_id]
            if not session.browser_path or not session.features_path:
                continue
            if session_id not in features_cache:
                features_cache[session_id] = load(storage.local(session.features_path))
            features = features_cache[session_id]
            rel = f"clips/model_{model_id}/syllable_{k}_{j}.mp4"
            cut_clip(
                storage.local(session.browser_path),
                storage.abspath(rel),
                times=np.asarray(features.times),
                centre=_centre(features, start, end),
                side=_side(features),
                start=max(0, start - PAD_FRAMES),
                end=min(features.n_frames, end + PAD_FRAMES),
            )
            storage.publish(rel)
            out.setdefault(k, []).append(
                {"path": rel, "session_id": session_id, "start_frame": start, "end_frame": end}
            )
            done += 1
            if progress is not None:
                progress(done / total, f"rendered {done} of {total} clips")
    return out


def _centre(features: Any, start: int, end: int) -> tuple[float, float]:
    x = np.nanmean(np.asarray(features.scalars["x"][start:end]))
    y = np.nanmean(np.asarray(features.scalars["y"][start:end]))
    return float(x), float(y)


def _side(features: Any) -> int:
    body = float(features.summary.get("median_body_length_px", 40) or 40)
    return int(max(48, min(400, 3.0 * body)))


def cut_clip(
    src: Path,
    dst: Path,
    *,
    times: np.ndarray,
    centre: tuple[float, float],
    side: int,
    start: int,
    end: int,
) -> None:
    """Write frames [start, end) of ``src`` as a small H.264 MP4, cropped around ``centre``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial.mp4")
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        time_base = Fraction(stream.time_base or Fraction(1, 90000))
        rate = Fraction(stream.average_rate or 30).limit_denominator(1001)
        first = _first_time(src)
        t_start = first + float(times[start])
        inp.seek(int(max(0.0, t_start - 1.0) / time_base), stream=stream, backward=True)
        wanted = end - start
        written = 0
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=rate)
            video.width = video.height = CLIP_SIDE
            video.pix_fmt = "yuv420p"
            video.options = {"crf": "26", "preset": "veryfast"}
            for frame in inp.decode(stream):
                t = float((frame.pts or 0) * time_base)
                if t < t_start - 0.5 / float(rate):
                    continue
                image = _crop(frame.to_ndarray(format="rgb24"), centre, side)
                out_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                out_frame.pts = written
                for packet in video.encode(out_frame):
                    out.mux(packet)
                written += 1
                if written >= wanted:
                    break
            for packet in video.encode(None):
                out.mux(packet)
    tmp.replace(dst)


def _first_time(path: Path) -> float:
    with av.open(str(path)) as inp:
        for frame in inp.decode(video=0):
            return float((frame.pts or 0) * Fraction(frame.time_base or 0))
    return 0.0


def _crop(image: np.ndarray, centre: tuple[float, float], side: int) -> np.ndarray:
    h, w = image.shape[:2]
    half = side // 2
    cx = int(np.clip(np.nan_to_num(centre[0], nan=w / 2), half, max(half, w - half)))
    cy = int(np.clip(np.nan_to_num(centre[1], nan=h / 2), half, max(half, h - half)))
    patch = image[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half]
    return cv2.resize(patch, (CLIP_SIDE, CLIP_SIDE), interpolation=cv2.INTER_AREA)
