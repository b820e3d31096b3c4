"""The job chain: what a finished job queues next, in one place.

    new upload -> probe -> ingest -> segment (by the experiment's newest ready model, if any)
    fit -> segment, every ingested session of the experiment
    the last pending segment of a model -> clips (its example clips)

Each ``after_*`` runs inside the finishing job's transaction, after the runner has marked that
job succeeded: the next jobs are queued exactly once, and only if the result is stored.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.storage import Storage
from app.experiments.models import VideoSession
from app.jobs import service as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.syllables import service as syllables
from app.syllables.models import SyllableModel


def after_upload(db: Session, *, session: VideoSession, settings: Settings) -> Job:
    """A new session's video is read first (frame count, rate, size, codec)."""
    return _queue(db, JobKind.probe, settings, session=session)


def after_probe(db: Session, *, session: VideoSession, settings: Settings) -> Job:
    return _queue(db, JobKind.ingest, settings, session=session)


def after_ingest(
    db: Session, *, session: VideoSession, framing: int, settings: Settings, storage: Storage
) -> Job | None:
    """A later upload is segmented with the frozen model, unless that model was fitted on crops
    framed otherwise (before an upgrade): then the session waits for the next fit."""
    model = syllables.latest_ready_model(db, session.experiment_id)
    if model is None or model_framing(model, storage) != framing:
        return None
    return _queue_segment(db, session=session, model=model, settings=settings)


def after_fit(db: Session, *, model: SyllableModel, settings: Settings) -> list[Job]:
    return [
        _queue_segment(db, session=s, model=model, settings=settings)
        for s in syllables.ingested_sessions(db, model.experiment_id)
    ]


def after_segment(db: Session, *, model_id: int, settings: Settings) -> Job | None:
    """Once a model's last pending segmentation is stored, queue its example clips (once)."""
    # Lock the model's row: two segmentations finishing together then see each other's
    # commit, so one of them (not none, not both) finds itself the last.
    model = db.get(SyllableModel, model_id, with_for_update=True, populate_existing=True)
    if model is None or syllables.pending_segment_jobs(db, model_id) > 0:
        return None
    if _queued_clips(db, model_id) is not None:
        return None  # a clips job that has not started yet will see this segmentation too
    return _queue(db, JobKind.clips, settings, experiment_id=model.experiment_id, model_id=model_id)


def model_framing(model: SyllableModel, storage: Storage) -> int:
    """How the crops of a ready model's training sessions were framed
    (:data:`model.preprocess.CROP_FRAMING`): stored with the fit; for a model fitted before it
    was, read from the artifact's JSON (no torch)."""
    stored = (model.settings or {}).get("crop_framing")
    if stored is not None:
        return int(stored)
    if not model.artifact_path:
        return 1
    try:
        meta = json.loads(storage.local(f"{model.artifact_path}/model.json").read_text())
    except (OSError, ValueError):
        return 1
    return int((meta.get("summary") or {}).get("crop_framing", 1))


def _queue_segment(
    db: Session, *, session: VideoSession, model: SyllableModel, settings: Settings
) -> Job:
    return _queue(db, JobKind.segment, settings, session=session, model_id=model.id)


def _queue(
    db: Session,
    kind: JobKind,
    settings: Settings,
    *,
    session: VideoSession | None = None,
    experiment_id: int | None = None,
    model_id: int | None = None,
) -> Job:
    """A job on the CPU queue, for a session (and its experiment) or an experiment."""
    return jobs.create(
        db,
        kind=kind,
        queue=settings.cpu_queue,
        max_attempts=settings.job_max_attempts,
        session_id=session.id if session else None,
        experiment_id=session.experiment_id if session else experiment_id,
        params={"model_id": model_id} if model_id is not None else None,
    )


def _queued_clips(db: Session, model_id: int) -> Job | None:
    for job in db.scalars(
        select(Job).where(Job.kind == JobKind.clips, Job.status == JobStatus.queued)
    ):
        if (job.params or {}).get("model_id") == model_id:
            return job
    return None
