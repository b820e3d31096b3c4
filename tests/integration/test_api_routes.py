"""Every route of the OpenAPI document, against the real database (SQLite and PostgreSQL):
unknown ids give 404 with a message, wrong id types give 422; plus bad input per route."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import FAKE_MP4, backend_env

ID_PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture
def client(make_app, backend) -> Any:
    return make_app({**backend, "SYLLABARY_MAX_UPLOAD_BYTES": "1000000"})


def routes(client: Any) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method in ops
        if ID_PARAM.search(path)
    ]


def fill(path: str, value: str) -> str:
    return ID_PARAM.sub(value, path)


def call(client: Any, method: str, url: str) -> Any:
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = {}
    return client.request(method, url, **kwargs)


def test_every_route_with_an_unknown_id_is_404(client) -> None:
    checked = 0
    for method, path in routes(client):
        url = fill(path, "987654")
        if "{number}" in path:
            url = ID_PARAM.sub(lambda m: "0" if m.group(1) == "number" else "987654", path)
        if "upload_id" in path:
            url = fill(path, "0123456789abcdef0123456789abcdef")
        response = call(client, method, url)
        assert response.status_code in (404, 422), (method, path, response.text)
        if response.status_code == 404:
            assert response.json()["detail"], (method, path)
            checked += 1
    assert checked >= 15


def test_every_route_with_a_malformed_id_is_422(client) -> None:
    for method, path in routes(client):
        if "upload_id" in path:
            continue  # upload ids are opaque strings: an unknown one is a 404
        response = call(client, method, fill(path, "not-a-number"))
        assert response.status_code == 422, (method, path, response.text)


def test_fit_needs_ready_sessions_and_sane_settings(client) -> None:
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    r = client.post(f"/api/experiments/{eid}/fit", json={})
    assert r.status_code == 422 and "No session" in r.json()["detail"]
    assert client.post(f"/api/experiments/{eid}/fit", json={"states": 1}).status_code == 422
    assert client.post(f"/api/experiments/{eid}/fit", json={"states": "many"}).status_code == 422
    r = client.post(f"/api/experiments/{eid}/fit", json={"session_ids": [12345]})
    assert r.status_code == 422 and "12345" in r.json()["detail"]


def test_sessions_a_model_cannot_handle_are_said_so_and_left_out_of_fits(client) -> None:
    """A video with no mouse in most frames, or with several animals, is flagged in words
    before any fit, and a fit leaves it out unless it is named or included on purpose."""
    from tests import factories

    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    quality = {
        "good": {"fraction_no_mouse": 0.01, "fraction_several_blobs": 0.0},
        "empty": {"fraction_no_mouse": 0.8, "fraction_several_blobs": 0.0},
        "crowded": {"fraction_no_mouse": 0.0, "fraction_several_blobs": 0.45},
    }
    ids = {}
    with client.app.state.session_factory() as db:
        for name, q in quality.items():
            row = factories.video_session(db, eid)
            row.quality = q
            ids[name] = row.id
        db.commit()
    sessions = {s["id"]: s for s in client.get(f"/api/experiments/{eid}/sessions").json()}
    assert sessions[ids["good"]]["fit_problem"] is None
    assert "no mouse was found in 80% of its frames" in sessions[ids["empty"]]["fit_problem"]
    assert "more than one animal" in sessions[ids["crowded"]]["fit_problem"]
    assert "45%" in sessions[ids["crowded"]]["fit_problem"]

    def fitted(body: dict[str, Any]) -> list[int]:
        r = client.post(f"/api/experiments/{eid}/fit", json=body)
        assert r.status_code == 202, r.text
        newest = max(client.get(f"/api/experiments/{eid}/models").json(),
                     key=lambda m: m["version"])  # fmt: skip
        return sorted(newest["session_ids"])

    assert fitted({}) == [ids["good"]]
    assert fitted({"include_flagged": True}) == sorted(ids.values())
    assert fitted({"session_ids": [ids["empty"]]}) == [ids["empty"]]


def test_a_fit_of_only_flagged_sessions_says_why(client) -> None:
    from tests import factories

    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    with client.app.state.session_factory() as db:
        row = factories.video_session(db, eid)
        row.quality = {"fraction_no_mouse": 0.9}
        row.original_filename = "empty-arena.mp4"
        db.commit()
    r = client.post(f"/api/experiments/{eid}/fit", json={})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "empty-arena.mp4" in detail and "no mouse" in detail and "include_flagged" in detail


def test_resumable_upload_rejects_bad_ranges_and_oversized_files(client) -> None:
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    big = client.post(
        f"/api/experiments/{eid}/uploads", json={"filename": "big.mp4", "size": 2_000_000}
    )
    assert big.status_code == 413 and "upload limit" in big.json()["detail"]
    size = len(FAKE_MP4)
    up = client.post(
        f"/api/experiments/{eid}/uploads", json={"filename": "a.mp4", "size": size}
    ).json()
    url = f"/api/uploads/{up['id']}"
    assert client.put(url, content=b"0123456789").status_code == 422  # no Content-Range
    r = client.put(url, content=b"0123", headers={"Content-Range": "bytes 0-3/99"})
    assert r.status_code == 422 and "differs" in r.json()["detail"]
    r = client.put(url, content=b"0123456", headers={"Content-Range": f"bytes 0-3/{size}"})
    assert r.status_code == 422 and "longer" in r.json()["detail"]
    r = client.put(url, content=b"01", headers={"Content-Range": f"bytes 0-3/{size}"})
    assert r.status_code == 422 and "send it again" in r.json()["detail"]
    text = b"my lab notes, not a video".ljust(size)[:size]
    r = client.put(url, content=text, headers={"Content-Range": f"bytes 0-{size - 1}/{size}"})
    assert r.status_code == 422 and "plain text" in r.json()["detail"]
    assert client.get(url).json()["received_bytes"] == 0
    whole = f"bytes 0-{size - 1}/{size}"
    r = client.put(url, content=FAKE_MP4, headers={"Content-Range": whole})
    assert r.status_code == 200 and r.json()["status"] == "done"
    session = client.get(f"/api/sessions/{r.json()['session_id']}").json()
    assert session["size_bytes"] == size  # unreadable: stored, and its probe will say so
    again = client.put(url, content=FAKE_MP4, headers={"Content-Range": whole})
    assert again.status_code == 409


def test_assignment_csv_assigns_and_reports_unmatched(client, tmp_path) -> None:
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    for name in ("a.mp4", "b.mp4"):
        r = client.post(
            f"/api/experiments/{eid}/sessions", files={"file": (name, FAKE_MP4 + name.encode())}
        )
        assert r.status_code == 201
    csv_text = "filename,subject,cohort\na.mp4,m1,saline\nb.mp4,m2,drug\nc.mp4,m3,drug\n"
    r = client.post(
        f"/api/experiments/{eid}/assignments", files={"file": ("assign.csv", csv_text.encode())}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"assigned": 2, "unmatched": ["c.mp4"]}
    sessions = client.get(f"/api/experiments/{eid}/sessions").json()
    assert {(s["original_filename"], s["subject"], s["cohort"]) for s in sessions} == {
        ("a.mp4", "m1", "saline"),
        ("b.mp4", "m2", "drug"),
    }
    bad = client.post(
        f"/api/experiments/{eid}/assignments", files={"file": ("x.csv", b"\xff\xfe\x00bad")}
    )
    assert bad.status_code == 422 and "UTF-8" in bad.json()["detail"]
    subjects = client.get(f"/api/experiments/{eid}/subjects").json()
    m1 = next(s for s in subjects if s["name"] == "m1")
    moved = client.patch(f"/api/subjects/{m1['id']}", json={"cohort": "drug", "sex": "F"})
    assert moved.status_code == 200 and moved.json()["cohort"] == "drug"
    assert {c["name"] for c in client.get(f"/api/experiments/{eid}/cohorts").json()} == {
        "saline",
        "drug",
    }


def test_session_and_experiment_edits(client) -> None:
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    assert client.patch(f"/api/experiments/{eid}", json={"name": ""}).status_code == 422
    r = client.patch(f"/api/experiments/{eid}", json={"description": "open field, 10 min"})
    assert r.json()["description"] == "open field, 10 min"
    sid = client.post(
        f"/api/experiments/{eid}/sessions", files={"file": ("v.mp4", FAKE_MP4)}
    ).json()["id"]
    r = client.patch(
        f"/api/sessions/{sid}",
        json={"subject": "m9", "cohort": "sham", "recorded_on": "2026-11-01", "notes": "lights on"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["subject"], body["cohort"], body["recorded_on"], body["notes"]) == (
        "m9",
        "sham",
        "2026-11-01",
        "lights on",
    )
    assert client.patch(f"/api/sessions/{sid}", json={"recorded_on": "soon"}).status_code == 422


def test_not_yet_processed_session_answers_clearly(make_app, tmp_path) -> None:
    client = make_app(backend_env(tmp_path))
    eid = client.post("/api/experiments", json={"name": "x"}).json()["id"]
    sid = client.post(
        f"/api/experiments/{eid}/sessions", files={"file": ("v.mp4", FAKE_MP4)}
    ).json()["id"]
    for suffix, words in (
        ("video", "browser copy"),
        ("thumbnail.jpg", "thumbnail"),
        ("ethogram.csv", "not been segmented"),
        ("bouts.csv", "not been segmented"),
    ):
        r = client.get(f"/api/sessions/{sid}/{suffix}")
        assert r.status_code == 404 and words in r.json()["detail"], (suffix, r.text)
    viewer = client.get(f"/api/sessions/{sid}/viewer").json()
    assert viewer["bouts"] == {"start": [], "end": [], "syllable": []}
    assert client.get(f"/api/experiments/{eid}/export.zip").status_code == 200
