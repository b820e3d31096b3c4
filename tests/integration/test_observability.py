"""Request ids, JSON request logs, /readyz and /metrics, on both backends (in-process app)."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.logs import JsonFormatter
from tests.conftest import DEEPOF, FAKE_MP4, backend_env


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_request_id_is_accepted_returned_and_logged(make_app, backend, caplog) -> None:
    client = make_app(backend)
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    with caplog.at_level(logging.INFO, logger="syllabary.http"):
        given = client.get(f"/api/experiments/{eid}", headers={"X-Request-ID": "lab-script.42"})
        fresh = client.get("/api/experiments/999")
        hostile = client.get("/healthz", headers={"X-Request-ID": "a b\nforged: 1"})
    assert given.headers["x-request-id"] == "lab-script.42"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])  # replaced, not echoed
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    entry = next(e for e in lines if e.get("request_id") == "lab-script.42")
    assert entry["event"] == "http.request" and entry["status"] == 200
    assert entry["route"] == "/api/experiments/{experiment_id}" and entry["method"] == "GET"
    assert entry["duration_ms"] >= 0
    missing = next(e for e in lines if e.get("request_id") == fresh.headers["x-request-id"])
    assert missing["status"] == 404


def test_readyz_names_the_failing_check(make_app, backend, tmp_path) -> None:
    from app.core.config import Settings
    from app.main import create_app

    client = make_app(backend)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}

    # An unmigrated database and a storage folder that is a file: both named.
    from fastapi.testclient import TestClient

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    env = backend_env(tmp_path / "other")
    settings = Settings(
        var_dir=Path(env["SYLLABARY_VAR_DIR"]),
        database_url="",  # a fresh SQLite file, never migrated
        broker_url="",
        storage_dir=blocked,
        environment="test",
    )
    with TestClient(create_app(settings)) as other:
        answer = other.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["failing"] == ["database", "storage"], body
    assert "not migrated" in body["checks"]["database"]
    assert "syllabary migrate" in body["checks"]["database"]
    assert "not writable" in body["checks"]["storage"]


def test_metrics_cover_requests_uploads_and_jobs(make_app, backend, shared_data) -> None:
    from app.core.db import utcnow
    from app.jobs.models import Job

    client = make_app(backend)
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    before = metric(client.get("/metrics").text, "syllabary_upload_bytes_total")
    with DEEPOF.open("rb") as fh:
        first = client.post(f"/api/experiments/{eid}/sessions", files={"file": ("a.mp4", fh)})
    assert first.status_code == 201
    second = client.post(
        f"/api/experiments/{eid}/sessions", files={"file": ("b.mp4", FAKE_MP4)}
    ).json()
    client.get(f"/api/sessions/{first.json()['id']}")
    # One probe job finished quickly, one failed slowly; the first session's stays queued.
    factory = client.app.state.session_factory
    with factory() as db:
        done = db.get(Job, second["jobs"][0]["id"])
        now = utcnow()
        done.status, done.started_at, done.finished_at = "failed", now - timedelta(seconds=40), now
        db.add(Job(kind="fit", queue="gpu", status="succeeded", started_at=now, finished_at=now))
        db.commit()

    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    route = "/api/experiments/{experiment_id}/sessions"
    assert metric(text, "syllabary_http_requests_total", route=route, method="POST", status="201")
    assert metric(text, "syllabary_http_request_duration_seconds_count", route=route, method="POST")
    uploaded = metric(text, "syllabary_upload_bytes_total") - before
    assert uploaded >= DEEPOF.stat().st_size + len(FAKE_MP4)
    queue = backend["SYLLABARY_CPU_QUEUE"]
    assert metric(text, "syllabary_jobs", kind="probe", queue=queue, status="queued") == 1
    assert metric(text, "syllabary_jobs", kind="probe", queue=queue, status="failed") == 1
    assert metric(text, "syllabary_job_failures_total", kind="probe") == 1
    count = "syllabary_job_duration_seconds_count"
    assert metric(text, count, kind="probe", outcome="failed") == 1
    assert metric(text, "syllabary_job_duration_seconds_sum", kind="probe", outcome="failed") == (
        pytest.approx(40, abs=1)
    )
    assert (
        metric(
            text, "syllabary_job_duration_seconds_bucket", kind="probe", outcome="failed", le="30.0"
        )
        == 0
    )
    assert (
        metric(
            text, "syllabary_job_duration_seconds_bucket", kind="probe", outcome="failed", le="60.0"
        )
        == 1
    )
    assert metric(text, count, kind="fit", outcome="succeeded") == 1
