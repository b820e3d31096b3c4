"""How many CPU threads a worker's numerical libraries use, set once when the worker starts."""

from __future__ import annotations

import os

from app.core.config import Settings

# Read by OpenMP, OpenBLAS and MKL when they load: set before numpy or torch is imported.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def worker_threads(settings: Settings, cores: int | None = None) -> int:
    """``settings.worker_threads``, or, when 0, the available cores shared among the host's
    workers (at least one each)."""
    if settings.worker_threads > 0:
        return settings.worker_threads
    cores = available_cores() if cores is None else cores
    return max(1, cores // settings.workers_per_host)


def limit_threads(n: int) -> None:
    """Give this process's numerical libraries ``n`` threads. Call before they are imported:
    torch and OpenBLAS read the environment then (so the worker's start-up does not load
    torch); OpenCV, already cheap to load, is set directly."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(n)
    import cv2

    cv2.setNumThreads(n)
