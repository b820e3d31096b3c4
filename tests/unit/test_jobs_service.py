"""The job life cycle on a real (SQLite) database: claims, leases, reaper, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.jobs import service as jobs
from app.jobs.models import Job, JobStatus


@pytest.fixture
def sent() -> Iterator[list[tuple[int, str, float]]]:
    messages: list[tuple[int, str, float]] = []
    jobs.set_sender(lambda job_id, queue, countdown: messages.append((job_id, queue, countdown)))
    jobs.install_session_hooks(Session)
    yield messages
    jobs.set_sender(jobs._default_sender)


def new_job(db: Session, max_attempts: int = 3) -> Job:
    job = jobs.create(db, kind="probe", queue="cpu", max_attempts=max_attempts)
    db.commit()
    return job


def test_job_is_sent_only_after_commit_and_not_after_rollback(db, sent) -> None:
    job = jobs.create(db, kind="probe", queue="cpu", max_attempts=3)
    assert sent == []
    db.commit()
    assert sent == [(job.id, "cpu", 0.0)]
    jobs.create(db, kind="probe", queue="cpu", max_attempts=3)
    db.rollback()
    db.commit()
    assert len(sent) == 1


def test_only_one_worker_can_claim_a_job(db, sent) -> None:
    job = new_job(db)
    assert jobs.claim(db, job_id=job.id, worker_id="a", lease_seconds=30)
    assert not jobs.claim(db, job_id=job.id, worker_id="b", lease_seconds=30)
    db.commit()
    db.refresh(job)
    assert (job.status, job.worker_id, job.attempts) == (JobStatus.running, "a", 1)


def test_lease_renewal_and_completion_need_the_lease(db, sent) -> None:
    job = new_job(db)
    jobs.claim(db, job_id=job.id, worker_id="a", lease_seconds=30)
    assert jobs.renew_lease(db, job_id=job.id, worker_id="a", lease_seconds=30, progress=0.5)
    assert not jobs.renew_lease(db, job_id=job.id, worker_id="b", lease_seconds=30)
    assert not jobs.mark_succeeded(db, job_id=job.id, worker_id="b", result={})
    assert jobs.mark_succeeded(db, job_id=job.id, worker_id="a", result={"n": 1})
    assert not jobs.mark_succeeded(db, job_id=job.id, worker_id="a", result={"n": 2})
    db.commit()
    db.refresh(job)
    assert job.status == JobStatus.succeeded and job.result == {"n": 1}


def expire(db: Session, job: Job) -> None:
    db.execute(
        update(Job).where(Job.id == job.id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.commit()


def test_reaper_requeues_expired_leases_then_fails_when_attempts_are_used(db, sent) -> None:
    job = new_job(db, max_attempts=2)
    sent.clear()
    for attempt in (1, 2):
        assert jobs.claim(db, job_id=job.id, worker_id=f"w{attempt}", lease_seconds=30)
        db.commit()
        assert jobs.reap(db, requeue_after_s=300) == {"requeued": [], "failed": [], "resent": []}
        expire(db, job)
        outcome = jobs.reap(db, requeue_after_s=300)
        db.commit()
        db.refresh(job)
        if attempt == 1:
            assert outcome["requeued"] == [job.id]
            assert job.status == JobStatus.queued and job.worker_id is None
            assert sent == [(job.id, "cpu", 0.0)]
        else:
            assert outcome["failed"] == [job.id]
            assert job.status == JobStatus.failed
            assert "stopped responding" in (job.error or "")
    # The first worker coming back to life cannot write a result any more.
    assert not jobs.mark_succeeded(db, job_id=job.id, worker_id="w1", result={})


def test_reaper_resends_queued_jobs_whose_message_was_lost(db, sent) -> None:
    job = new_job(db)
    sent.clear()
    assert jobs.reap(db, requeue_after_s=300)["resent"] == []
    db.execute(
        update(Job).where(Job.id == job.id).values(enqueued_at=utcnow() - timedelta(hours=1))
    )
    db.commit()
    assert jobs.reap(db, requeue_after_s=300)["resent"] == [job.id]
    db.commit()
    assert sent == [(job.id, "cpu", 0.0)]


def test_transient_failure_is_retried_with_backoff_and_bad_input_is_not(db, sent) -> None:
    job = new_job(db, max_attempts=2)
    sent.clear()
    jobs.claim(db, job_id=job.id, worker_id="a", lease_seconds=30)
    status = jobs.mark_failed(
        db, job_id=job.id, worker_id="a", error="boom", permanent=False, backoff_s=2
    )
    db.commit()
    assert status == JobStatus.queued and sent == [(job.id, "cpu", 2.0)]
    jobs.claim(db, job_id=job.id, worker_id="b", lease_seconds=30)
    status = jobs.mark_failed(
        db, job_id=job.id, worker_id="b", error="boom", permanent=False, backoff_s=2
    )
    db.commit()
    assert status == JobStatus.failed

    other = new_job(db, max_attempts=5)
    jobs.claim(db, job_id=other.id, worker_id="a", lease_seconds=30)
    status = jobs.mark_failed(
        db, job_id=other.id, worker_id="a", error="not a video", permanent=True, backoff_s=2
    )
    db.commit()
    assert status == JobStatus.failed


def test_retry_only_applies_to_failed_jobs(db, sent) -> None:
    job = new_job(db, max_attempts=1)
    with pytest.raises(jobs.JobNotRetryable):
        jobs.retry(db, job, extra_attempts=3)
    jobs.claim(db, job_id=job.id, worker_id="a", lease_seconds=30)
    jobs.mark_failed(db, job_id=job.id, worker_id="a", error="x", permanent=True, backoff_s=0)
    db.commit()
    db.refresh(job)
    sent.clear()
    jobs.retry(db, job, extra_attempts=3)
    db.commit()
    assert job.status == JobStatus.queued and job.max_attempts == 4 and job.error is None
    assert sent == [(job.id, "cpu", 0.0)]
