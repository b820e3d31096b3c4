"""The Celery worker: one task, ``run_job``, plus a reaper thread for expired leases."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy.orm import Session

from app.core.broker import RUN_JOB_TASK, get_celery
from app.core.config import get_settings
from app.core.db import engine_for, session_scope
from app.jobs import service as jobs
from app.jobs.service import install_session_hooks
from worker.handlers import HANDLERS
from worker.runner import execute, new_worker_id
from worker.shutdown import install_sigterm_handler

log = logging.getLogger("syllabary.worker")

celery_app = get_celery()
install_session_hooks(Session)  # enqueue-after-commit for every session this process opens
WORKER_ID = new_worker_id()
_reaper_stop = threading.Event()


@celery_app.task(name=RUN_JOB_TASK, acks_late=True)
def run_job(job_id: int) -> str | None:
    settings = get_settings()
    return execute(
        job_id,
        settings=settings,
        engine=engine_for(settings.sqlalchemy_url),
        worker_id=WORKER_ID,
        handlers=HANDLERS,
    )


def reap_once() -> dict[str, list[int]]:
    settings = get_settings()
    with session_scope(engine_for(settings.sqlalchemy_url)) as db:
        outcome = jobs.reap(db, requeue_after_s=settings.job_resend_after_seconds)
    if any(outcome.values()):
        log.info("reaper: %s", outcome)
    return outcome


def _reaper_loop(interval: float) -> None:
    while not _reaper_stop.wait(interval):
        try:
            reap_once()
        except Exception:
            log.exception("reaper pass failed; trying again")


@worker_ready.connect
def _install_graceful_shutdown(**_kwargs: Any) -> None:
    # After Celery installed its handlers: SIGTERM abandons the running job (see shutdown.py).
    if not install_sigterm_handler():
        log.warning("SIGTERM handler not installed (not on the main thread)")


@worker_ready.connect
def _start_reaper(**_kwargs: Any) -> None:
    interval = get_settings().reaper_interval_seconds
    threading.Thread(target=_reaper_loop, args=(interval,), name="reaper", daemon=True).start()
    try:
        reap_once()
    except Exception:
        log.exception("first reaper pass failed")


@worker_shutdown.connect
def _stop_reaper(**_kwargs: Any) -> None:
    _reaper_stop.set()
