"""Graceful shutdown with real worker subprocesses: SIGTERM gives the running job up at once
(no more lease renewals), and another worker finishes it exactly once."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import TRACKTOR, job_running, wait_for
from tests.integration.test_pipeline import finished, job_of, upload

pytestmark = pytest.mark.slow


def test_sigterm_gives_up_the_running_job_and_another_worker_finishes_it(
    backend, make_app, workers, shared_data
) -> None:
    client = make_app(backend)
    experiment = client.post("/api/experiments", json={"name": "Shutdown"}).json()
    first = workers.start(backend)
    session = upload(client, experiment["id"], TRACKTOR, subject="m1")
    job_running(client, session["jobs"][0]["id"])
    sent = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=10)
    assert time.monotonic() - sent < 5, "the worker did not exit promptly on SIGTERM"
    job = job_of(client, session)
    assert job["status"] == "running" and job["attempts"] == 1  # given up, not failed

    lines = [json.loads(line) for line in workers.logs().splitlines() if line.startswith("{")]
    abandon = [e for e in lines if e.get("event") == "worker.abandon_job"]
    assert abandon and abandon[0]["job_id"] == job["id"], workers.logs()[-3000:]
    assert abandon[0]["job_kind"] == "probe" and abandon[0]["attempt"] == 1
    claimed = [e for e in lines if e.get("event") == "job.claimed"]
    assert claimed and claimed[0]["job_id"] == job["id"] and claimed[0]["attempt"] == 1

    workers.start(backend)  # its reaper re-queues the lapsed lease, then it runs the job
    job = wait_for(lambda: finished(client, session), timeout=120, what="the re-run")
    assert job["status"] == "succeeded", (job, workers.logs()[-3000:])
    assert job["attempts"] == 2
    got = client.get(f"/api/sessions/{session['id']}").json()
    assert [j["kind"] for j in got["jobs"]] == ["probe", "ingest"]  # one result, one ingest


def test_sigterm_when_idle_stops_the_worker(backend, make_app, workers) -> None:
    make_app(backend)
    proc = workers.start(backend)
    wait_for(lambda: " ready.\"" in workers.logs(), timeout=60, what="the worker to be ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
