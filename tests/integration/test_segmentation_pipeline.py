"""The whole product path through the API with a real worker: resumable upload, ingest
(browser copy, thumbnail, preprocessing), fit, segmentation of every session, example clips,
viewer data, renaming, CSV and ZIP exports, and automatic segmentation of a later upload."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import av
import pytest

from model.preprocess import CROP_FRAMING
from tests.conftest import DEEPOF, SHARED_DATA, backend_env, job_done, wait_for

pytestmark = pytest.mark.slow
DLC = SHARED_DATA / "dlc-openfield-short" / "m3v1mp4short.mp4"


def resumable_upload(client: Any, experiment_id: int, path: Path, chunk: int, **meta: str) -> Any:
    data = path.read_bytes()
    chunk = min(chunk, len(data) // 3)
    started = client.post(
        f"/api/experiments/{experiment_id}/uploads",
        json={"filename": path.name, "size": len(data), **meta},
    )
    assert started.status_code == 201, started.text
    upload = started.json()
    # Send the first chunk, then pretend the connection dropped mid-way through the second.
    first = client.put(
        f"/api/uploads/{upload['id']}",
        content=data[:chunk],
        headers={"Content-Range": f"bytes 0-{chunk - 1}/{len(data)}"},
    )
    assert first.status_code == 200 and first.json()["received_bytes"] == chunk
    skip = chunk + 100  # a chunk that does not continue where the server is
    wrong = client.put(
        f"/api/uploads/{upload['id']}",
        content=data[skip : skip + 100],
        headers={"Content-Range": f"bytes {skip}-{skip + 99}/{len(data)}"},
    )
    assert wrong.status_code == 409, wrong.text
    assert f"from byte {chunk}" in wrong.json()["detail"]
    offset = client.get(f"/api/uploads/{upload['id']}").json()["received_bytes"]
    while offset < len(data):
        end = min(len(data), offset + chunk)
        r = client.put(
            f"/api/uploads/{upload['id']}",
            content=data[offset:end],
            headers={"Content-Range": f"bytes {offset}-{end - 1}/{len(data)}"},
        )
        assert r.status_code == 200, r.text
        offset = r.json()["received_bytes"]
    final = client.get(f"/api/uploads/{upload['id']}").json()
    assert final["status"] in ("done", "duplicate") and final["session_id"]
    return final


def jobs_done(client: Any, session_id: int, kinds: set[str]) -> list[dict[str, Any]] | None:
    jobs = client.get(f"/api/sessions/{session_id}").json()["jobs"]
    if any(j["status"] == "failed" for j in jobs):
        raise AssertionError(f"a job failed: {jobs}")
    done = {j["kind"] for j in jobs if j["status"] == "succeeded"}
    return jobs if kinds <= done else None


def _pretend_older_framing(client: Any, session_id: int) -> Path:
    """Rewrite a session's features as preprocessing before crop framing 2 left them (no
    ``crop_framing`` recorded); returns the features file."""
    from model.features import load, save

    app = client.app
    with app.state.session_factory() as db:
        from app.experiments.models import VideoSession

        row = db.get(VideoSession, session_id)
        path = Path(app.state.storage.abspath(row.features_path))
        features = load(path, mmap=False)
        features.summary.pop("crop_framing", None)
        save(features, path)
        row.quality = {k: v for k, v in (row.quality or {}).items() if k != "crop_framing"}
        db.commit()
    return path


def test_upload_ingest_fit_segment_browse_export(make_app, workers, tmp_path, shared_data):
    env = backend_env(tmp_path, clips_per_syllable=2)
    client = make_app(env)
    experiment = client.post("/api/experiments", json={"name": "Pipeline"}).json()
    eid = experiment["id"]
    workers.start(env)

    up = resumable_upload(client, eid, DEEPOF, chunk=300_000, subject="m1", cohort="saline")
    again = resumable_upload(client, eid, DEEPOF, chunk=600_000)
    assert again["status"] == "duplicate" and again["session_id"] == up["session_id"]
    sid = up["session_id"]
    wait_for(lambda: jobs_done(client, sid, {"probe", "ingest"}), timeout=180, what="ingest")
    session = client.get(f"/api/sessions/{sid}").json()
    assert session["status"] == "ready" and session["frame_count"] == 251
    assert session["quality"]["frames"] == 251
    video = client.get(session["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    ranged = client.get(session["video_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    (tmp_path / "browser.mp4").write_bytes(video.content)
    with av.open(str(tmp_path / "browser.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in c.decode(video=0)) == 251
    assert client.get(session["thumbnail_url"]).content[:2] == b"\xff\xd8"
    assert client.get(f"/api/sessions/{sid}/ethogram.csv").status_code == 404  # not segmented

    # As if ingested by an older Syllabary, whose crops were framed otherwise: the fit must
    # preprocess it again from the original, so that one model sees every session alike.
    features_file = _pretend_older_framing(client, sid)
    assert session["quality"]["crop_framing"] == CROP_FRAMING

    fit = client.post(f"/api/experiments/{eid}/fit", json={"states": 4, "epochs": 1})
    assert fit.status_code == 202, fit.text
    job = job_done(client, fit.json()["id"], timeout=300, what="fit")
    assert job["status"] == "succeeded", (job, workers.logs()[-3000:])
    assert job["metrics"], "the training curve is kept on the job"
    kinds = {j["kind"] for j in client.get(f"/api/experiments/{eid}/jobs").json()}
    assert {"probe", "ingest", "fit"} <= kinds
    model = client.get(f"/api/experiments/{eid}/models").json()[0]
    assert model["status"] == "ready" and model["version"] == 1
    assert model["states_used"] >= 1 and model["median_duration_s"] > 0
    from model.features import load

    assert load(features_file).summary["crop_framing"] == CROP_FRAMING
    assert client.get(f"/api/sessions/{sid}").json()["quality"]["crop_framing"] == CROP_FRAMING
    wait_for(lambda: jobs_done(client, sid, {"segment"}), timeout=120, what="segmentation")

    viewer = client.get(f"/api/sessions/{sid}/viewer").json()
    assert viewer["model"]["id"] == model["id"]
    bouts = viewer["bouts"]
    assert bouts["start"][0] == 0 and bouts["end"][-1] == 251
    assert all(a == b for a, b in zip(bouts["end"][:-1], bouts["start"][1:], strict=True))
    assert len(viewer["tracks"]["speed"]) == len(viewer["tracks"]["time_s"]) > 0

    ethogram = client.get(f"/api/sessions/{sid}/ethogram.csv")
    rows = list(csv.reader(io.StringIO(ethogram.text)))
    assert rows[0][:5] == ["frame", "time_s", "syllable", "syllable_name", "probability"]
    assert len(rows) - 1 == 251
    bouts_rows = list(
        csv.DictReader(io.StringIO(client.get(f"/api/sessions/{sid}/bouts.csv").text))
    )
    assert sum(int(r["end_frame"]) - int(r["start_frame"]) for r in bouts_rows) == 251

    detail = client.get(f"/api/models/{model['id']}").json()
    used = [s for s in detail["syllables"] if s["bout_count"] > 0]
    assert used and abs(sum(s["usage"] for s in used) - 1.0) < 1e-6
    assert len(detail["transition_matrix"]) == 4
    target = used[0]
    renamed = client.patch(f"/api/syllables/{target['id']}", json={"name": "rear up"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "rear up"
    names = {
        r[3] for r in csv.reader(io.StringIO(client.get(f"/api/sessions/{sid}/ethogram.csv").text))
    }
    assert "rear up" in names

    # Example clips are rendered once segmentation is done.
    def clips_ready() -> list[dict[str, Any]] | None:
        syllables = client.get(f"/api/models/{model['id']}").json()["syllables"]
        with_clips = [s for s in syllables if s["clips"]]
        return with_clips or None

    with_clips = wait_for(clips_ready, timeout=120, what="example clips")
    clip = client.get(with_clips[0]["clips"][0]["url"])
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"

    # A later upload is segmented with the frozen model, automatically.
    later = resumable_upload(client, eid, DLC, chunk=1 << 20, subject="m2", cohort="drug")
    wait_for(lambda: jobs_done(client, later["session_id"], {"segment"}), timeout=180, what="later")

    archive = client.get(f"/api/experiments/{eid}/export.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = set(zf.namelist())
        assert {"sessions.csv", "syllables.csv", "transition_matrix.csv"} <= names
        assert sum(n.endswith(".ethogram.csv") for n in names) == 2
        sessions_csv = list(csv.DictReader(io.StringIO(zf.read("sessions.csv").decode())))
        assert {r["cohort"] for r in sessions_csv} == {"saline", "drug"}
