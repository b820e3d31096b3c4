"""Job handlers: thin glue from a job row to a service or engine function.

Each handler does its slow work outside any transaction and returns a writer that stores the
result (see ``worker.runner``). Files a handler makes go to paths keyed by the session or model
id and are moved into place atomically, so a re-run after a crash overwrites, never duplicates.
A handler reads stored files through ``storage.local`` and publishes each file it makes before
its result names it, so with a bucket any host can read what another host's worker wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import session_factory
from app.core.storage import Storage, storage_for
from app.experiments import service as experiments
from app.experiments.models import VideoSession
from app.jobs import pipeline
from app.jobs import service as jobs
from app.jobs.models import JobKind
from app.syllables import service as syllables
from app.syllables.models import ModelStatus
from model.video import VideoLimitExceeded, VideoLimits, probe
from worker.runner import Handler, JobContext, PermanentJobError, ResultWriter

if TYPE_CHECKING:
    from model.features import Features


def _load_session(ctx: JobContext) -> VideoSession:
    if ctx.session_id is None:
        raise PermanentJobError("this job is not attached to a session")
    with session_factory(ctx.engine)() as db:
        return experiments.get_session_or_raise(db, ctx.session_id)


def _storage(ctx: JobContext) -> Storage:
    return storage_for(ctx.settings)


class _Stages:
    """Maps a stage's own 0..1 progress into its slice of the job's progress bar."""

    def __init__(self, ctx: JobContext, stages: list[tuple[str, float]]) -> None:
        self.ctx, self.stages = ctx, stages
        self.start = {name: sum(w for _, w in stages[:i]) for i, (name, _) in enumerate(stages)}
        self.weight = dict(stages)
        self.t0 = time.monotonic()

    def report(self, stage: str, fraction: float, message: str) -> None:
        total = self.start[stage] + self.weight[stage] * max(0.0, min(1.0, fraction))
        elapsed = time.monotonic() - self.t0
        left = ""
        if total > 0.05:
            left = f", about {_duration(elapsed * (1 - total) / total)} left"
        self.ctx.progress(total, f"{message}{left}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


# ---------------------------------------------------------------------------------------------
# probe


def handle_probe(ctx: JobContext) -> ResultWriter:
    session = _load_session(ctx)
    ctx.progress(0.0, "reading the video")
    path = _storage(ctx).local(session.original_path)
    expected = _expected_frames(path)

    def on_frames(n: int) -> None:
        fraction = min(0.99, n / expected) if expected else 0.5
        ctx.progress(fraction, f"decoded {n} frames")

    settings = ctx.settings
    try:
        info = probe(
            path,
            name=session.original_filename,
            progress=on_frames,
            limits=video_limits(settings),
        ).as_dict()
    except VideoLimitExceeded as exc:
        setting = f"SYLLABARY_VIDEO_{exc.limit.upper()}"
        raise PermanentJobError(f"{exc} (An admin can change this limit with {setting}.)") from exc

    def write(db: Session) -> dict[str, Any]:
        row = experiments.apply_probe(db, session_id=session.id, info=info)
        pipeline.after_probe(db, session=row, settings=settings)
        return info

    return write


def video_limits(settings: Settings) -> VideoLimits:
    return VideoLimits(
        max_width=settings.video_max_width,
        max_height=settings.video_max_height,
        max_duration_s=settings.video_max_duration_s,
        max_frames=settings.video_max_frames,
        min_frames=settings.video_min_frames,
    )


def _expected_frames(path: object) -> int:
    """Frame count from container metadata, only to scale the progress bar."""
    import av

    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames or 0)
    except Exception:
        return 0


# ---------------------------------------------------------------------------------------------
# ingest: browser copy, thumbnail, preprocessing


def session_dir(session_id: int) -> str:
    return f"sessions/{session_id}"


def handle_ingest(ctx: JobContext) -> ResultWriter:
    from model.features import framing
    from model.transcode import transcode_for_browser, write_thumbnail

    session = _load_session(ctx)
    storage = _storage(ctx)
    original = storage.local(session.original_path)
    name = session.original_filename
    frames = session.frame_count or 1
    folder = session_dir(session.id)
    stages = _Stages(ctx, [("copy", 0.45), ("thumb", 0.05), ("track", 0.5)])

    browser = f"{folder}/browser.mp4"
    stages.report("copy", 0, "making a browser-playable copy")
    transcode_for_browser(
        original,
        storage.abspath(browser),
        name=name,
        progress=lambda n: stages.report("copy", n / frames, "making a browser-playable copy"),
    )
    storage.publish(browser)
    thumbnail = f"{folder}/thumbnail.jpg"
    stages.report("thumb", 0, "making a thumbnail")
    write_thumbnail(original, storage.abspath(thumbnail))
    storage.publish(thumbnail)
    stages.report("track", 0, "finding the mouse")
    features_path = f"{folder}/features.npz"
    features = _preprocess(
        ctx,
        original,
        storage.abspath(features_path),
        progress=lambda done, total: stages.report(
            "track", done / max(total, 1), f"finding the mouse ({done}/{total} frames)"
        ),
    )
    storage.publish(features_path)
    quality = dict(features.summary)
    settings = ctx.settings

    def write(db: Session) -> dict[str, Any]:
        row = experiments.get_session_or_raise(db, session.id)
        row.browser_path, row.thumbnail_path = browser, thumbnail
        row.features_path, row.quality = features_path, quality
        pipeline.after_ingest(
            db, session=row, framing=framing(quality), settings=settings, storage=storage
        )
        return {"quality": quality}

    return write


# ---------------------------------------------------------------------------------------------
# fit


def model_dir(model_id: int) -> str:
    return f"models/{model_id}"


def handle_fit(ctx: JobContext) -> ResultWriter:
    from model.features import framing, load
    from model.preprocess import CROP_FRAMING
    from model.train import fit_features

    model_id = int(ctx.params["model_id"])
    with session_factory(ctx.engine)() as db:
        model = syllables.get_model_or_raise(db, model_id)
        sessions = [experiments.get_session_or_raise(db, i) for i in model.session_ids]
        states = model.states
    storage = _storage(ctx)
    missing = [s.original_filename for s in sessions if not s.features_path]
    if missing:
        raise PermanentJobError(f"These sessions were not preprocessed: {', '.join(missing)}.")
    ctx.progress(0.0, f"loading {len(sessions)} session(s)")
    features = [load(storage.local(s.features_path or "")) for s in sessions]
    # Sessions ingested before crops were framed as now are preprocessed again from their
    # originals (read-only, never touched): one model must see every session framed alike.
    requality: dict[int, dict[str, Any]] = {}
    for i, (s, f) in enumerate(zip(sessions, features, strict=True)):
        if framing(f.summary) != CROP_FRAMING:
            ctx.progress(0.0, f"preprocessing {s.original_filename} again (older crop framing)")
            features[i] = _preprocess_again(ctx, s, storage)
        if framing(s.quality or {}) != framing(features[i].summary):
            # Also when an earlier attempt of this fit rewrote the file but failed before
            # storing the session's new figures.
            requality[s.id] = dict(features[i].summary)
    curve: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def progress(fraction: float, message: str, metrics: dict[str, Any]) -> None:
        if metrics:
            point = {k: _jsonable(v) for k, v in metrics.items()}
            point["fraction"] = round(fraction, 4)
            curve.append(point)
            ctx.set_metrics(curve[-500:])
        elapsed = time.monotonic() - t0
        left = (
            f", about {_duration(elapsed * (1 - fraction) / fraction)} left"
            if fraction > 0.05
            else ""
        )
        ctx.progress(fraction * 0.97, f"{message}{left}")

    fitted = fit_features(
        features, states=states, epochs=ctx.params.get("epochs"), progress=progress
    )
    del features
    fitted.summary["crop_size"] = ctx.settings.crop_size
    artifact = model_dir(model_id)
    fitted.save(storage.abspath(artifact))
    storage.publish(artifact)
    summary = {k: _jsonable(v) for k, v in fitted.summary.items()}
    fit_summary = fitted.fit_summary
    settings = ctx.settings

    def write(db: Session) -> dict[str, Any]:
        for session_id, quality in requality.items():
            experiments.get_session_or_raise(db, session_id).quality = quality
        # The whole curve, even when the fit ended before a heartbeat sent it.
        jobs.set_metrics(db, job_id=ctx.job_id, metrics=curve[-500:])
        model = syllables.record_fit(
            db, model_id=model_id, artifact_path=artifact, summary=fit_summary, curve=curve[-500:]
        )
        queued = pipeline.after_fit(db, model=model, settings=settings)
        return {"model_id": model_id, "summary": summary, "segment_jobs": len(queued)}

    return write


def _preprocess(
    ctx: JobContext,
    original: Path,
    features_file: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Features:
    """A session's features from its original (only read) by today's preprocessing, saved to
    ``features_file`` (derived data, replaced whole)."""
    from model.features import from_preprocessed, save
    from model.preprocess import preprocess_video

    pre = preprocess_video(original, crop_size=ctx.settings.crop_size, progress=progress)
    features = from_preprocessed(pre)
    del pre  # the float crops go before the file is written
    save(features, features_file)
    return features


def _preprocess_again(ctx: JobContext, session: VideoSession, storage: Storage) -> Features:
    """An older session's features made again, as ingest makes them now."""
    features_path = session.features_path or ""
    features = _preprocess(
        ctx, storage.local(session.original_path), storage.abspath(features_path)
    )
    storage.publish(features_path)
    return features


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------
# segment


@lru_cache(maxsize=4)
def _fitted(path: str) -> Any:
    from model.artifact import FittedModel

    return FittedModel.load(path)


def handle_segment(ctx: JobContext) -> ResultWriter:
    from model.features import framing, load
    from model.preprocess import CROP_FRAMING
    from model.segment import segment_features

    model_id = int(ctx.params["model_id"])
    session = _load_session(ctx)
    with session_factory(ctx.engine)() as db:
        model = syllables.get_model_or_raise(db, model_id)
        if model.status != ModelStatus.ready or not model.artifact_path:
            raise PermanentJobError(f"model version {model.version} is not ready")
        artifact, model_version = model.artifact_path, model.version
    if not session.features_path:
        raise PermanentJobError(f"{session.original_filename} has not been preprocessed yet")
    storage = _storage(ctx)
    ctx.progress(0.02, "loading the model and the session")
    fitted = _fitted(str(storage.local_dir(artifact)))
    features = load(storage.local(session.features_path))
    quality: dict[str, Any] | None = None
    if framing(features.summary) < framing(fitted.summary) == CROP_FRAMING:
        # Ingested before an upgrade: preprocess it again from its original, as a fit would.
        ctx.progress(0.03, "preprocessing again (older crop framing)")
        features = _preprocess_again(ctx, session, storage)
        quality = dict(features.summary)
    if framing(fitted.summary) != framing(features.summary):
        raise PermanentJobError(
            f"Model version {model_version} was fitted on sessions preprocessed by an older "
            f"Syllabary, whose crops are framed otherwise than {session.original_filename}'s: "
            "fit a new model to segment this session (a fit preprocesses older sessions again)."
        )
    seg = segment_features(
        fitted,
        features,
        keep_posterior=False,
        progress=lambda f, m, _metrics: ctx.progress(0.05 + 0.9 * f, m),
    )
    times, fps, settings = np.asarray(features.times), features.fps, ctx.settings

    def write(db: Session) -> dict[str, Any]:
        if quality is not None:
            experiments.get_session_or_raise(db, session.id).quality = quality
        syllables.record_segmentation(
            db,
            session_id=session.id,
            model_id=model_id,
            syllable=seg.syllable,
            probability=seg.probability,
            bouts=seg.bouts,
            transition_counts=seg.transition_counts,
            usage=seg.usage,
            times=times,
            fps=fps,
        )
        pipeline.after_segment(db, model_id=model_id, settings=settings)
        return {"model_id": model_id, "bouts": len(seg.bouts)}

    return write


# ---------------------------------------------------------------------------------------------
# clips


def handle_clips(ctx: JobContext) -> ResultWriter:
    from worker.clips import render_model_clips

    model_id = int(ctx.params["model_id"])
    clips = render_model_clips(
        ctx.engine,
        _storage(ctx),
        model_id,
        per_syllable=ctx.settings.clips_per_syllable,
        progress=ctx.progress,
    )

    def write(db: Session) -> dict[str, Any]:
        model = syllables.get_model_or_raise(db, model_id)
        for syllable in model.syllables:
            syllable.clips = clips.get(syllable.index, [])
        return {"clips": sum(len(v) for v in clips.values())}

    return write


HANDLERS: dict[str, Handler] = {
    JobKind.probe: handle_probe,
    JobKind.ingest: handle_ingest,
    JobKind.fit: handle_fit,
    JobKind.segment: handle_segment,
    JobKind.clips: handle_clips,
}
