"""Runs one job end to end: claim, heartbeat, call the handler, record the result.

A handler does the work outside any transaction and returns a *writer*; the writer's database
writes and the job's completion share one transaction guarded by our lease, so a result is
written exactly once even if this worker is killed and another one runs the job again.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import session_factory
from app.core.errors import BadInput
from app.core.logs import job_logging
from app.jobs import service as jobs
from app.jobs.models import Job
from model.video import VideoError
from worker import shutdown

log = logging.getLogger(__name__)

ResultWriter = Callable[[Session], dict[str, Any] | None]

# The database went away (a restart, a network blip): worth waiting for rather than failing.
DB_UNAVAILABLE = (OperationalError, InterfaceError)
DB_WAIT_S = 60.0


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (bad input); the message is shown to the user."""


# Errors whose message is meant for the user and that no retry can fix.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (PermanentJobError, VideoError, BadInput)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class JobContext:
    """What a handler gets: the job's identity and parameters, settings, and a progress hook."""

    job_id: int
    kind: str
    params: dict[str, Any]
    session_id: int | None
    experiment_id: int | None
    settings: Settings
    engine: Engine
    lost: threading.Event = field(default_factory=threading.Event)
    _progress: tuple[float, str] | None = None
    _metrics: list[dict[str, Any]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._progress = (fraction, message)

    def set_metrics(self, metrics: list[dict[str, Any]]) -> None:
        """Live figures (e.g. the training curve) shown while the job runs."""
        with self._lock:
            self._metrics = list(metrics)

    def take_progress(self) -> tuple[float, str] | None:
        with self._lock:
            value, self._progress = self._progress, None
            return value

    def take_metrics(self) -> list[dict[str, Any]] | None:
        with self._lock:
            value, self._metrics = self._metrics, None
            return value


Handler = Callable[[JobContext], ResultWriter]


class _Heartbeat(threading.Thread):
    """Renews the lease (and writes progress) until stopped; flags the context if lost."""

    def __init__(self, ctx: JobContext, worker_id: str, lease_s: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.ctx, self.worker_id, self.lease_s = ctx, worker_id, lease_s
        self.stop_event = threading.Event()
        self.factory = session_factory(ctx.engine)
        self._context = contextvars.copy_context()

    def run(self) -> None:
        # Logs carry the job's id, kind and attempt, like the code that runs the job.
        self._context.run(self._beat)

    def _beat(self) -> None:
        interval = min(1.0, self.lease_s / 3)
        while not self.stop_event.wait(interval):
            if shutdown.stopping.is_set():
                return  # shutting down: let the lease lapse so another worker takes the job
            update = self.ctx.take_progress()
            metrics = self.ctx.take_metrics()
            try:
                with self.factory() as db:
                    ok = jobs.renew_lease(
                        db,
                        job_id=self.ctx.job_id,
                        worker_id=self.worker_id,
                        lease_seconds=self.lease_s,
                        progress=update[0] if update else None,
                        message=update[1] if update else None,
                        metrics=metrics,
                    )
                    db.commit()
            except Exception:
                log.warning("lease renewal for job %s failed; will retry", self.ctx.job_id)
                continue
            if not ok:
                log.warning("job %s is no longer held by this worker", self.ctx.job_id)
                self.ctx.lost.set()
                return

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


T = TypeVar("T")


def _waiting_for_db(what: str, attempt: Callable[[], T]) -> T:
    """Run ``attempt``; while the database is briefly away (a restart) try again for up to
    ``DB_WAIT_S``, so a job is neither failed nor left for the reaper because of a blip."""
    delay, deadline = 0.5, time.monotonic() + DB_WAIT_S
    while True:
        try:
            return attempt()
        except DB_UNAVAILABLE as exc:
            if time.monotonic() > deadline:
                raise
            log.warning(
                "database unavailable while %s (%s); retrying in %.1f s",
                what,
                exc.__class__.__name__,
                delay,
                extra={"event": "db.unavailable"},
            )
            time.sleep(delay)
            delay = min(5.0, delay * 2)


def _claim(
    factory: Callable[[], Session], job_id: int, worker_id: str, lease_s: float
) -> Job | None:
    with factory() as db:
        if not jobs.claim(db, job_id=job_id, worker_id=worker_id, lease_seconds=lease_s):
            db.rollback()
            return None
        db.commit()
        job = db.get(Job, job_id)
        assert job is not None
        db.expunge(job)
        return job


def execute(
    job_id: int,
    *,
    settings: Settings,
    engine: Engine,
    worker_id: str,
    handlers: dict[str, Handler],
) -> str | None:
    """Run job ``job_id`` if it is still queued. Returns its final status, or None if the job
    was not ours to run (already taken, finished, or unknown)."""
    if shutdown.stopping.is_set():
        return None  # shutting down: leave the job queued for another worker
    factory = session_factory(engine)
    job = _waiting_for_db(
        f"claiming job {job_id}",
        lambda: _claim(factory, job_id, worker_id, settings.job_lease_seconds),
    )
    if job is None:
        return None
    ctx = JobContext(
        job_id=job.id,
        kind=job.kind,
        params=dict(job.params or {}),
        session_id=job.session_id,
        experiment_id=job.experiment_id,
        settings=settings,
        engine=engine,
    )
    shutdown.job_started(job.id, job.kind, job.attempts)
    started = time.monotonic()
    try:
        with job_logging(job.id, job.kind, job.attempts):
            log.info(
                "job %s (%s) claimed by %s, attempt %s",
                job_id,
                ctx.kind,
                worker_id,
                job.attempts,
                extra={"event": "job.claimed", "worker_id": worker_id},
            )
            status = _run(ctx, factory, worker_id, settings, handlers)
            log.info(
                "job %s: %s",
                job_id,
                status or "dropped (lease lost)",
                extra={
                    "event": "job.finished",
                    "status": status or "lease_lost",
                    "duration_s": round(time.monotonic() - started, 3),
                },
            )
            return status
    finally:
        shutdown.job_ended()


def _run(
    ctx: JobContext,
    factory: Callable[[], Session],
    worker_id: str,
    settings: Settings,
    handlers: dict[str, Handler],
) -> str | None:
    job_id = ctx.job_id
    heartbeat = _Heartbeat(ctx, worker_id, settings.job_lease_seconds)
    heartbeat.start()
    try:
        handler = handlers.get(ctx.kind)
        if handler is None:
            raise PermanentJobError(f"unknown job kind {ctx.kind!r}")
        writer = handler(ctx)
    except PERMANENT_ERRORS as exc:
        heartbeat.stop()
        return _fail(factory, job_id, worker_id, str(exc), permanent=True, settings=settings)
    except Exception as exc:
        heartbeat.stop()
        log.exception("job %s failed", job_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _fail(
            factory,
            job_id,
            worker_id,
            f"internal error: {detail}",
            permanent=False,
            settings=settings,
        )
    heartbeat.stop()
    return _waiting_for_db(
        f"saving the result of job {job_id}",
        lambda: _save(factory, job_id, worker_id, writer, settings),
    )


def _save(
    factory: Callable[[], Session],
    job_id: int,
    worker_id: str,
    writer: ResultWriter,
    settings: Settings,
) -> str | None:
    with factory() as db:
        try:
            if not jobs.mark_succeeded(db, job_id=job_id, worker_id=worker_id, result=None):
                db.rollback()
                log.warning("job %s finished but its lease was lost; result dropped", job_id)
                return None
            result = writer(db)
            if result is not None:
                job = db.get(Job, job_id, populate_existing=True)
                assert job is not None
                job.result = result
            db.commit()
        except DB_UNAVAILABLE:
            with contextlib.suppress(Exception):
                db.rollback()
            raise
        except Exception as exc:
            db.rollback()
            log.exception("writing the result of job %s failed", job_id)
            return _fail(
                factory,
                job_id,
                worker_id,
                f"could not save the result: {exc}",
                permanent=False,
                settings=settings,
            )
    return "succeeded"


def _fail(
    factory: Callable[[], Session],
    job_id: int,
    worker_id: str,
    error: str,
    *,
    permanent: bool,
    settings: Settings,
) -> str | None:

    def record() -> str | None:
        with factory() as db:
            status = jobs.mark_failed(
                db,
                job_id=job_id,
                worker_id=worker_id,
                error=error,
                permanent=permanent,
                backoff_s=2.0,
            )
            db.commit()
            return status

    status = _waiting_for_db(f"recording the failure of job {job_id}", record)
    log.info("job %s: %s (%s)", job_id, status, error)
    return status
