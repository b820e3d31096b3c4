"""The JSON API against the real database: happy paths and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import DEEPOF, backend_env


@pytest.fixture
def client(make_app, tmp_path) -> Any:
    return make_app(backend_env(tmp_path, max_upload_bytes=2_000_000))


def test_healthz_checks_database_and_broker(client) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"


def test_experiment_create_read_list(client) -> None:
    created = client.post("/api/experiments", json={"name": "EPM", "description": "d"})
    assert created.status_code == 201
    experiment = created.json()
    assert client.get(f"/api/experiments/{experiment['id']}").json()["name"] == "EPM"
    assert [e["id"] for e in client.get("/api/experiments").json()] == [experiment["id"]]
    assert client.get(f"/api/experiments/{experiment['id']}/sessions").json() == []


@pytest.mark.parametrize(
    "route",
    ["/api/experiments/999", "/api/sessions/999", "/api/jobs/999", "/api/experiments/999/sessions"],
)
def test_unknown_ids_are_404_with_a_message(client, route: str) -> None:
    response = client.get(route)
    assert response.status_code == 404
    assert "999" in response.json()["detail"]


def test_wrong_types_and_missing_fields_are_422(client) -> None:
    assert client.get("/api/sessions/abc").status_code == 422
    assert client.post("/api/experiments", json={}).status_code == 422
    assert client.post("/api/experiments", json={"name": ""}).status_code == 422
    assert client.post("/api/experiments", json={"name": 5}).status_code == 422
    experiment = client.post("/api/experiments", json={"name": "x"}).json()
    no_file = client.post(f"/api/experiments/{experiment['id']}/sessions", data={"subject": "a"})
    assert no_file.status_code == 422


def test_upload_to_unknown_experiment_is_404(client, shared_data) -> None:
    with DEEPOF.open("rb") as fh:
        response = client.post("/api/experiments/42/sessions", files={"file": ("a.mp4", fh)})
    assert response.status_code == 404


def test_oversized_upload_is_413_and_nothing_is_kept(client, tmp_path) -> None:
    experiment = client.post("/api/experiments", json={"name": "x"}).json()
    response = client.post(
        f"/api/experiments/{experiment['id']}/sessions",
        files={"file": ("huge.mp4", b"\0" * 2_500_000, "video/mp4")},
    )
    assert response.status_code == 413
    assert "upload limit" in response.json()["detail"]
    assert client.get(f"/api/experiments/{experiment['id']}/sessions").json() == []
    storage = tmp_path / "var" / "storage"
    assert not (storage / "originals").exists()


def test_upload_creates_subject_and_cohort_once(client, shared_data) -> None:
    experiment = client.post("/api/experiments", json={"name": "x"}).json()
    url = f"/api/experiments/{experiment['id']}/sessions"
    video = DEEPOF.read_bytes()
    sessions = []
    for i in range(2):  # two recordings of one animal (other bytes: a byte appended)
        r = client.post(url, files={"file": (DEEPOF.name, video + b"\0" * i)},
                        data={"subject": "m1", "cohort": "drug"})  # fmt: skip
        assert r.status_code == 201, r.text
        sessions.append(r.json())
    assert sessions[0]["sha256"] != sessions[1]["sha256"]
    assert {s["cohort"] for s in sessions} == {"drug"}
    assert {s["subject"] for s in sessions} == {"m1"}
    assert sessions[0]["jobs"][0]["kind"] == "probe"
    # The same animal cannot silently change cohort.
    r = client.post(url, files={"file": (DEEPOF.name, video + b"\0" * 2)},
                    data={"subject": "m1", "cohort": "saline"})  # fmt: skip
    assert r.status_code == 422 and "already in cohort" in r.json()["detail"]


def test_the_same_video_uploaded_again_is_the_same_session(client, shared_data) -> None:
    """Both upload paths recognise a video the experiment already has: no second session, no
    second probe."""
    experiment = client.post("/api/experiments", json={"name": "x"}).json()
    url = f"/api/experiments/{experiment['id']}/sessions"
    first = client.post(url, files={"file": (DEEPOF.name, DEEPOF.read_bytes())})
    again = client.post(url, files={"file": ("renamed.mp4", DEEPOF.read_bytes())})
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert len(client.get(url).json()) == 1
    assert len(again.json()["jobs"]) == 1
    # The resumable path finds it too.
    start = client.post(f"/api/experiments/{experiment['id']}/uploads",
                        json={"filename": "third.mp4", "size": DEEPOF.stat().st_size})  # fmt: skip
    assert start.status_code == 201, start.text
    upload = start.json()
    size = DEEPOF.stat().st_size
    put = client.put(f"/api/uploads/{upload['id']}", content=DEEPOF.read_bytes(),
                     headers={"Content-Range": f"bytes 0-{size - 1}/{size}"})  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "duplicate" and put.json()["session_id"] == first.json()["id"]
    assert len(client.get(url).json()) == 1


def test_retry_of_a_job_that_has_not_failed_is_409(client, shared_data) -> None:
    experiment = client.post("/api/experiments", json={"name": "x"}).json()
    with DEEPOF.open("rb") as fh:
        session = client.post(
            f"/api/experiments/{experiment['id']}/sessions", files={"file": (DEEPOF.name, fh)}
        ).json()
    response = client.post(f"/api/jobs/{session['jobs'][0]['id']}/retry")
    assert response.status_code == 409
    assert "only failed jobs" in response.json()["detail"]


def test_openapi_lists_the_contract_routes(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in (
        "/api/experiments",
        "/api/experiments/{experiment_id}/sessions",
        "/api/sessions/{session_id}",
        "/api/jobs/{job_id}",
    ):
        assert route in paths
