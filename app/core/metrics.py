"""Prometheus metrics of this process, and a per-app registry that adds job figures.

Request and upload counters live in the web process. Job figures (durations, failures, queue
depth) are read from the jobs table at scrape time, because workers are separate processes and
the table is the record of truth: every web process then reports the same, correct numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

# Created unregistered: each app registers them in its own registry (tests build many apps).
HTTP_REQUESTS = Counter(
    "syllabary_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "syllabary_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=None,
)
UPLOAD_BYTES = Counter(
    "syllabary_upload_bytes",
    "Bytes of uploaded video received by this process.",
    registry=None,
)

JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600)


class JobsCollector(Collector):
    """Job metrics computed from the jobs table on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Any]:
        return []  # registering must not query the database (it may not be migrated yet)

    def collect(self) -> Iterator[Any]:
        from app.jobs.models import Job, JobStatus

        with self.engine.connect() as conn:
            counts = conn.execute(
                select(Job.kind, Job.queue, Job.status, func.count()).group_by(
                    Job.kind, Job.queue, Job.status
                )
            ).all()
            finished = conn.execute(
                select(Job.kind, Job.status, Job.started_at, Job.finished_at).where(
                    Job.status.in_([JobStatus.succeeded, JobStatus.failed]),
                    Job.started_at.is_not(None),
                    Job.finished_at.is_not(None),
                )
            ).all()
        depth = GaugeMetricFamily(
            "syllabary_jobs",
            "Jobs in the jobs table now, by kind, queue and status (queued, running, ...).",
            labels=["kind", "queue", "status"],
        )
        failures = CounterMetricFamily(
            "syllabary_job_failures",
            "Jobs that ended failed (after their last attempt), by kind.",
            labels=["kind"],
        )
        failed_by_kind: dict[str, float] = {}
        for kind, queue, status, n in counts:
            depth.add_metric([kind, queue, status], n)
            if status == JobStatus.failed:
                failed_by_kind[kind] = failed_by_kind.get(kind, 0) + n
        for kind, total in sorted(failed_by_kind.items()):
            failures.add_metric([kind], total)
        yield depth
        yield failures
        yield _durations(list(finished))


def _durations(rows: list[Any]) -> HistogramMetricFamily:
    """Histogram of finished jobs' run time (their last attempt), by kind and outcome."""
    family = HistogramMetricFamily(
        "syllabary_job_duration_seconds",
        "Run time of finished jobs' last attempt, by kind and outcome.",
        labels=["kind", "outcome"],
    )
    groups: dict[tuple[str, str], list[float]] = {}
    for kind, status, started, ended in rows:
        groups.setdefault((kind, status), []).append(max(0.0, (ended - started).total_seconds()))
    for (kind, outcome), seconds in sorted(groups.items()):
        buckets = [
            (str(float(b)), float(sum(1 for s in seconds if s <= b))) for b in JOB_DURATION_BUCKETS
        ]
        buckets.append(("+Inf", float(len(seconds))))
        family.add_metric([kind, outcome], buckets, sum_value=sum(seconds))
    return family


def registry_for(engine: Engine) -> CollectorRegistry:
    """A registry with this process's HTTP and upload metrics and the jobs table's figures."""
    registry = CollectorRegistry(auto_describe=True)
    for metric in (HTTP_REQUESTS, HTTP_LATENCY, UPLOAD_BYTES):
        registry.register(metric)
    registry.register(JobsCollector(engine))
    return registry
