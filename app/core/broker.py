"""The Celery application, built from Settings. It only wakes workers up: jobs live in the DB.

The web app sends tasks by name through this object; ``worker.celery_app`` imports it and
registers the tasks, so ``app`` never imports ``worker``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from celery import Celery

from app.core.config import Settings, get_settings

RUN_JOB_TASK = "syllabary.run_job"


def make_celery(settings: Settings) -> Celery:
    celery = Celery("syllabary", broker=settings.celery_broker_url)
    conf: dict[str, object] = {
        "task_default_queue": settings.cpu_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if settings.is_embedded_broker:
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "control_folder": str(folder / "control"),
        }
        # The filesystem transport has no fan-out: no remote control, events or mingle.
        conf["worker_enable_remote_control"] = False
        conf["worker_send_task_events"] = False
    else:
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    celery.conf.update(conf)
    return celery


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def send_job(job_id: int, queue: str, countdown: float = 0.0) -> None:
    get_celery().send_task(RUN_JOB_TASK, args=[job_id], queue=queue, countdown=countdown or None)


def job_sender(settings: Settings) -> Callable[[int, str, float], None]:
    """A sender bound to ``settings``' broker (the web app may be built with explicit settings)."""
    celery = make_celery(settings)

    def send(job_id: int, queue: str, countdown: float) -> None:
        celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue, countdown=countdown or None)

    return send


def broker_ok(settings: Settings) -> tuple[bool, str]:
    """Whether the broker answers, with a short reason for /healthz."""
    if settings.is_embedded_broker:
        folder = settings.broker_dir / "queue"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".healthz"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            return False, f"filesystem broker folder not writable: {exc}"
        return True, "filesystem"
    try:
        with make_celery(settings).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return False, f"broker unreachable: {exc}"
    return True, "ok"
