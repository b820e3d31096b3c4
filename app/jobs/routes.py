"""JSON API for jobs: read one, retry a failed one."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.errors import Conflict, NotFound
from app.deps import DbSession, SettingsDep
from app.jobs import service
from app.jobs.schemas import JobPublic

router = APIRouter(prefix="/api", tags=["jobs"])


@router.get("/experiments/{experiment_id}/jobs")
def list_experiment_jobs(
    experiment_id: int, db: DbSession, active: bool = False
) -> list[JobPublic]:
    """The experiment's own jobs (fits, example clips) and its sessions' jobs, newest first;
    ``active=true`` keeps only queued and running ones."""
    from app.experiments.service import get_experiment_or_raise

    get_experiment_or_raise(db, experiment_id)
    return [
        JobPublic.model_validate(j)
        for j in service.list_for_experiment(db, experiment_id, active_only=active)
    ]


@router.get("/jobs/{job_id}")
def get_job(job_id: int, db: DbSession) -> JobPublic:
    job = service.get(db, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return JobPublic.model_validate(job)


@router.post("/jobs/{job_id}/retry")
def retry_job(job_id: int, db: DbSession, settings: SettingsDep) -> JobPublic:
    job = service.get(db, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    try:
        service.retry(db, job, extra_attempts=settings.job_max_attempts)
    except service.JobNotRetryable as exc:
        raise Conflict(str(exc)) from exc
    db.commit()
    return JobPublic.model_validate(job)
