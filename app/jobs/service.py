"""Job life cycle over a database session: create, claim, renew, finish, fail, retry, reap.

Services never commit: the request or the task does. Jobs created in a session are sent to the
broker only after that session commits (``after_commit`` hook), so a worker never receives a job
id that is not yet visible in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.jobs.models import Job, JobStatus

log = logging.getLogger(__name__)

_PENDING_KEY = "syllabary_jobs_to_enqueue"

# Replaced in tests and by the worker so sending can be observed; the default goes to Celery.
Sender = Callable[[int, str, float], None]


def _default_sender(job_id: int, queue: str, countdown: float) -> None:
    from app.core.broker import send_job

    send_job(job_id, queue, countdown)


_sender: Sender = _default_sender


def set_sender(sender: Sender) -> None:
    global _sender
    _sender = sender


class JobNotFound(LookupError):
    pass


class JobNotRetryable(ValueError):
    pass


def _after_commit(session: Session) -> None:
    pending: list[tuple[int, str, float]] = session.info.pop(_PENDING_KEY, [])
    for job_id, queue, countdown in pending:
        try:
            _sender(job_id, queue, countdown)
        except Exception:
            # The job stays queued in the database; the reaper sends it again.
            log.exception("could not send job %s to the broker; the reaper will retry", job_id)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def install_session_hooks(session_cls: Any) -> None:
    """Wire enqueue-after-commit into a Session class (idempotent)."""
    from sqlalchemy import event

    if not event.contains(session_cls, "after_commit", _after_commit):
        event.listen(session_cls, "after_commit", _after_commit)
        event.listen(session_cls, "after_soft_rollback", lambda s, _t: _after_rollback(s))


def enqueue_after_commit(db: Session, job: Job, countdown: float = 0.0) -> None:
    db.flush()
    job.enqueued_at = utcnow()
    db.info.setdefault(_PENDING_KEY, []).append((job.id, job.queue, countdown))


def create(
    db: Session,
    *,
    kind: str,
    queue: str,
    max_attempts: int,
    session_id: int | None = None,
    experiment_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    job = Job(
        kind=kind,
        queue=queue,
        status=JobStatus.queued,
        max_attempts=max_attempts,
        session_id=session_id,
        experiment_id=experiment_id,
        params=params or {},
        progress=0.0,
        progress_message="waiting for a worker",
        attempts=0,
        metrics=[],
    )
    db.add(job)
    enqueue_after_commit(db, job)
    return job


def get(db: Session, job_id: int) -> Job | None:
    return db.get(Job, job_id)


def get_or_raise(db: Session, job_id: int) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return job


def list_for_experiment(db: Session, experiment_id: int, *, active_only: bool) -> list[Job]:
    query = select(Job).where(Job.experiment_id == experiment_id)
    if active_only:
        query = query.where(Job.status.in_([JobStatus.queued, JobStatus.running]))
    return list(db.scalars(query.order_by(Job.id.desc()).limit(500)))


def claim(db: Session, *, job_id: int, worker_id: str, lease_seconds: float) -> bool:
    """Take a queued job for this worker. Only one claimant can win (guarded UPDATE)."""
    now = utcnow()
    result = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=now,
            error=None,
            progress_message="started",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _guard(job_id: int, worker_id: str) -> Any:
    return (Job.id == job_id, Job.status == JobStatus.running, Job.worker_id == worker_id)


def renew_lease(
    db: Session,
    *,
    job_id: int,
    worker_id: str,
    lease_seconds: float,
    progress: float | None = None,
    message: str | None = None,
    metrics: list[dict[str, Any]] | None = None,
) -> bool:
    """Extend the lease (and record progress). False when the job is no longer ours."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    if message is not None:
        values["progress_message"] = message[:500]
    if metrics is not None:
        values["metrics"] = metrics
    result = db.execute(
        update(Job)
        .where(*_guard(job_id, worker_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def mark_succeeded(
    db: Session, *, job_id: int, worker_id: str, result: dict[str, Any] | None
) -> bool:
    """Finish a job we hold. Call in the same transaction as the job's result writes, and roll
    back if this returns False (another worker took the job over): results then never double."""
    now = utcnow()
    res = db.execute(
        update(Job)
        .where(*_guard(job_id, worker_id))
        .values(
            status=JobStatus.succeeded,
            result=result,
            progress=1.0,
            progress_message="done",
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def set_metrics(db: Session, *, job_id: int, metrics: list[dict[str, Any]]) -> None:
    db.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(metrics=metrics)
        .execution_options(synchronize_session=False)
    )


def mark_failed(
    db: Session, *, job_id: int, worker_id: str, error: str, permanent: bool, backoff_s: float
) -> str | None:
    """Record a failure. Transient failures go back to the queue while attempts remain.

    Returns the new status, or None when the job was no longer ours.
    """
    job = db.get(Job, job_id, populate_existing=True)
    if job is None or job.status != JobStatus.running or job.worker_id != worker_id:
        return None
    now = utcnow()
    job.error = error
    job.lease_expires_at = None
    job.worker_id = None
    if not permanent and job.attempts < job.max_attempts:
        job.status = JobStatus.queued
        job.progress_message = f"retrying after an error (attempt {job.attempts} failed)"
        enqueue_after_commit(db, job, countdown=backoff_s * 2 ** (job.attempts - 1))
    else:
        job.status = JobStatus.failed
        job.progress_message = "failed"
        job.finished_at = now
    return job.status


def retry(db: Session, job: Job, *, extra_attempts: int) -> Job:
    """Put a failed job back in the queue with a fresh allowance of attempts."""
    if job.status != JobStatus.failed:
        raise JobNotRetryable(f"job {job.id} is {job.status}; only failed jobs can be retried")
    job.status = JobStatus.queued
    job.max_attempts = job.attempts + extra_attempts
    job.error = None
    job.finished_at = None
    job.progress = 0.0
    job.progress_message = "waiting for a worker (retry)"
    enqueue_after_commit(db, job)
    return job


def reap(db: Session, *, requeue_after_s: float) -> dict[str, list[int]]:
    """Recover jobs whose worker died, and resend jobs whose wake-up message was lost.

    - running with an expired lease: back to queued (and sent), or failed when attempts are used;
    - queued and last sent more than ``requeue_after_s`` ago: sent again (claiming is guarded,
      so a duplicate message is harmless).
    """
    now = utcnow()
    out: dict[str, list[int]] = {"requeued": [], "failed": [], "resent": []}
    expired = db.scalars(
        select(Job)
        .where(Job.status == JobStatus.running, Job.lease_expires_at < now)
        .execution_options(populate_existing=True)
    ).all()
    for job in expired:
        attempts_left = job.attempts < job.max_attempts
        res = db.execute(
            update(Job)
            .where(
                Job.id == job.id,
                Job.status == JobStatus.running,
                Job.lease_expires_at < now,
            )
            .values(
                status=JobStatus.queued if attempts_left else JobStatus.failed,
                worker_id=None,
                lease_expires_at=None,
                error=f"the worker stopped responding during attempt {job.attempts}",
                progress_message="waiting for a worker (previous worker lost)"
                if attempts_left
                else "failed",
                finished_at=None if attempts_left else now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            continue
        db.refresh(job)
        if attempts_left:
            enqueue_after_commit(db, job)
            out["requeued"].append(job.id)
        else:
            job.error = (
                f"the worker stopped responding on each of {job.attempts} attempts "
                "(it may have run out of memory); retry when the cause is fixed"
            )
            out["failed"].append(job.id)
    stale = db.scalars(
        select(Job)
        .where(
            Job.status == JobStatus.queued,
            Job.enqueued_at < now - timedelta(seconds=requeue_after_s),
        )
        .execution_options(populate_existing=True)
    ).all()
    for job in stale:
        if job.id in out["requeued"]:
            continue
        enqueue_after_commit(db, job)
        out["resent"].append(job.id)
    return out
