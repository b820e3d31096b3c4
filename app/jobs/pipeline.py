"""What a finished job queues next. Each function runs inside the completing job's transaction,
after the runner has marked that job succeeded, so "the last one" counts it as done."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.jobs import service as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.syllables import service as syllables
from app.syllables.models import SyllableModel


def after_segment(db: Session, *, model_id: int, settings: Settings) -> Job | None:
    """Once a model's last pending segmentation is stored, queue its example clips (once)."""
    # Lock the model's row: two segmentations finishing together then see each other's
    # commit, so one of them (not none, not both) finds itself the last.
    model = db.get(SyllableModel, model_id, with_for_update=True, populate_existing=True)
    if model is None or syllables.pending_segment_jobs(db, model_id) > 0:
        return None
    if _queued_clips(db, model_id) is not None:
        return None  # a clips job that has not started yet will see this segmentation too
    return jobs.create(
        db,
        kind=JobKind.clips,
        queue=settings.cpu_queue,
        max_attempts=settings.job_max_attempts,
        experiment_id=model.experiment_id,
        params={"model_id": model_id},
    )


def _queued_clips(db: Session, model_id: int) -> Job | None:
    for job in db.scalars(
        select(Job).where(Job.kind == JobKind.clips, Job.status == JobStatus.queued)
    ):
        if (job.params or {}).get("model_id") == model_id:
            return job
    return None
