"""Graceful shutdown: on SIGTERM a worker takes no new job and gives up the one it runs.

Finishing a long job could take an hour, more than any orchestrator waits. So the worker stops
renewing the running job's lease and exits at once: the lease lapses and a reaper (in any other
worker) puts the job back in the queue, counting the attempt. The result is written only under
a held lease, so the abandoned run can never add a duplicate.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger("syllabary.worker")

# Set once SIGTERM arrived: no new claims, no lease renewals.
stopping = threading.Event()

_running: dict[str, Any] = {}
_lock = threading.Lock()


def job_started(job_id: int, kind: str, attempt: int) -> None:
    with _lock:
        _running.update(job_id=job_id, kind=kind, attempt=attempt)


def job_ended() -> None:
    with _lock:
        _running.clear()


def running_job() -> dict[str, Any] | None:
    with _lock:
        return dict(_running) or None


def install_sigterm_handler() -> bool:
    """Take over SIGTERM (after Celery installed its own). False when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        job = running_job()
        if job is None:
            log.info("SIGTERM: no job running; stopping", extra={"event": "worker.stopping"})
            if callable(previous):
                previous(signum, frame)  # Celery's warm shutdown: stop consuming and exit
                return
            os._exit(0)
        log.warning(
            "SIGTERM during job %s: its lease is no longer renewed; exiting so another worker "
            "takes it over",
            job["job_id"],
            extra={"event": "worker.abandon_job", **job},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        # Exit without unwinding: the job's code is mid-flight and must not write anything.
        os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
