"""End to end: upload through the API, a real Celery worker subprocess runs the probe job.

Runs on both backend pairs: SQLite + filesystem broker (embedded) and PostgreSQL + Redis.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEEPOF, FAKE_MP4, TRACKTOR, job_running, wait_for

pytestmark = pytest.mark.slow

TRACKTOR_FRAMES = 10_000  # ../shared/data/README.md
DEEPOF_FRAMES = 251


def upload(client: Any, experiment_id: int, path: Path, **form: str) -> dict[str, Any]:
    with path.open("rb") as fh:
        response = client.post(
            f"/api/experiments/{experiment_id}/sessions",
            files={"file": (path.name, fh, "video/mp4")},
            data=form,
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


def job_of(client: Any, session: dict[str, Any]) -> dict[str, Any]:
    return dict(client.get(f"/api/jobs/{session['jobs'][0]['id']}").json())


def finished(client: Any, session: dict[str, Any]) -> dict[str, Any] | None:
    job = job_of(client, session)
    return job if job["status"] in ("succeeded", "failed") else None


def stored_file(env: dict[str, str], session: dict[str, Any], client: Any) -> Path:
    from app.core.config import Settings
    from app.core.db import engine_for, session_factory
    from app.experiments.models import VideoSession

    settings = Settings()
    assert settings.var_dir == Path(env["SYLLABARY_VAR_DIR"])
    with session_factory(engine_for(settings.sqlalchemy_url))() as db:
        row = db.get(VideoSession, session["id"])
        assert row is not None
        return settings.files_dir / row.original_path


def test_probe_job_end_to_end(backend, make_app, workers, shared_data) -> None:
    client = make_app(backend)
    assert client.get("/healthz").status_code == 200
    experiment = client.post("/api/experiments", json={"name": "Open field"}).json()
    workers.start(backend)
    session = upload(client, experiment["id"], TRACKTOR, subject="mouse 1", cohort="saline")
    assert session["status"] == "queued"
    assert session["subject"] == "mouse 1" and session["cohort"] == "saline"

    job = wait_for(lambda: finished(client, session), timeout=120, what="the probe job")
    assert job["status"] == "succeeded", (job, workers.logs())
    assert job["attempts"] == 1
    got = client.get(f"/api/sessions/{session['id']}").json()
    assert got["status"] in ("processing", "ready")  # ingest follows the probe
    assert got["frame_count"] == TRACKTOR_FRAMES
    assert (got["width"], got["height"], got["codec"]) == (640, 480, "h264")
    assert got["fps"] == pytest.approx(30.0)
    assert got["duration_s"] == pytest.approx(TRACKTOR_FRAMES / 30.0, abs=0.05)
    # The original is stored byte for byte, and read-only.
    original = stored_file(backend, session, client)
    assert hashlib.sha256(original.read_bytes()).hexdigest() == got["sha256"]
    assert got["sha256"] == hashlib.sha256(TRACKTOR.read_bytes()).hexdigest()
    assert not os.access(original, os.W_OK) or os.geteuid() == 0
    assert original.stat().st_mode & 0o222 == 0

    # Ingest (browser copy, thumbnail, mouse tracking) runs next, on the same worker. Its
    # three minutes of engine work on this clip do not depend on the database: it is waited
    # for once, with the production pair (PostgreSQL + Redis); SQLite runs of ingest are the
    # pipeline and browser tests'.
    if not backend["SYLLABARY_DATABASE_URL"]:
        return
    ready = wait_for(
        lambda: (
            (s := client.get(f"/api/sessions/{session['id']}").json())["status"]
            in ("ready", "failed")
            and s
        ),
        timeout=300,
        what="ingest",
    )
    assert ready["status"] == "ready", (ready["jobs"], workers.logs()[-3000:])
    assert ready["quality"]["frames"] == TRACKTOR_FRAMES
    assert ready["quality"]["fraction_no_mouse"] < 0.05
    assert hashlib.sha256(original.read_bytes()).hexdigest() == got["sha256"]  # still unchanged


def test_worker_killed_mid_job_is_recovered_exactly_once(
    backend, make_app, workers, shared_data
) -> None:
    client = make_app(backend)
    experiment = client.post("/api/experiments", json={"name": "Crash"}).json()
    first = workers.start(backend)
    session = upload(client, experiment["id"], TRACKTOR, subject="m1")
    job_running(client, session["jobs"][0]["id"])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert job_of(client, session)["status"] == "running"  # nobody has noticed yet

    workers.start(backend)  # its reaper re-queues the expired lease; it then runs the job
    job = wait_for(lambda: finished(client, session), timeout=120, what="the re-run")
    assert job["status"] == "succeeded", (job, workers.logs())
    assert job["attempts"] == 2
    got = client.get(f"/api/sessions/{session['id']}").json()
    assert got["frame_count"] == TRACKTOR_FRAMES
    # One probe job, one result, and the ingest it chains to was queued exactly once.
    assert [j["kind"] for j in got["jobs"]] == ["probe", "ingest"]


def test_bad_files_fail_clearly_and_worker_keeps_serving(
    backend, make_app, workers, shared_data, tmp_path
) -> None:
    client = make_app(backend)
    experiment = client.post("/api/experiments", json={"name": "Bad input"}).json()
    workers.start(backend)
    # Files that are not video containers are refused at upload, before anything decodes them.
    for name, content, words in (
        ("notes.mp4", b"these are my lab notes, not a video\n" * 50, "plain text"),
        ("empty.mp4", b"", "empty"),
    ):
        refused = client.post(
            f"/api/experiments/{experiment['id']}/sessions", files={"file": (name, content)}
        )
        assert refused.status_code == 422, refused.text
        assert "not a video" in refused.json()["detail"] and words in refused.json()["detail"]
    assert client.get(f"/api/experiments/{experiment['id']}/sessions").json() == []
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(TRACKTOR.read_bytes()[:400_000])
    unreadable = tmp_path / "unreadable.mp4"
    unreadable.write_bytes(FAKE_MP4 + b"these are my lab notes, not a video\n" * 50)
    cases = {
        truncated: "truncated",
        unreadable: "cannot be read",
    }
    sessions = {path: upload(client, experiment["id"], path) for path in cases}
    for path, words in cases.items():
        session = sessions[path]
        job = wait_for(lambda s=session: finished(client, s), timeout=60, what=path.name)
        assert job["status"] == "failed", job
        assert words in job["error"], job["error"]
        assert path.name in job["error"]
        assert job["attempts"] == 1  # bad input is not retried
        got = client.get(f"/api/sessions/{session['id']}").json()
        assert got["status"] == "failed"
        stored = stored_file(backend, session, client)
        assert stored.read_bytes() == path.read_bytes()  # unchanged

    good = upload(client, experiment["id"], DEEPOF)
    job = wait_for(lambda: finished(client, good), timeout=60, what="the good clip")
    assert job["status"] == "succeeded", (job, workers.logs())
    assert client.get(f"/api/sessions/{good['id']}").json()["frame_count"] == DEEPOF_FRAMES


def test_failed_job_can_be_retried(backend, make_app, workers, shared_data, tmp_path) -> None:
    client = make_app(backend)
    experiment = client.post("/api/experiments", json={"name": "Retry"}).json()
    workers.start(backend)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(FAKE_MP4)
    session = upload(client, experiment["id"], bad)
    job = wait_for(lambda: finished(client, session), timeout=60, what="the failure")
    assert job["status"] == "failed"
    again = client.post(f"/api/jobs/{job['id']}/retry")
    assert again.status_code == 200 and again.json()["status"] == "queued"
    job = wait_for(
        lambda: (j := job_of(client, session))["status"] == "failed" and j["attempts"] == 2 and j,
        timeout=60,
        what="the retried job",
    )
    assert job["attempts"] == 2
    assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 200
    wait_for(lambda: finished(client, session), timeout=60)
    assert client.post(f"/api/jobs/{job['id']}/retry").status_code in (200, 409)
