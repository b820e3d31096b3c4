"""A lab's own labels through the API: upload, agreement with the syllables, errors that name
the line, pooling per rater, export; on synthetic sessions whose true behaviour is known and
whose segmentation is stored through the real service (fast: no video, no fit)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.syllables import service as syllables
from model.ethogram import bouts_from_labels
from model.metrics import ari, nmi
from model.synth import render_session
from tests import factories
from tests.conftest import backend_env

STATES = 16
FPS = 30.0


def predicted(truth: np.ndarray, seed: int) -> np.ndarray:
    """A segmentation as a model might give: every behaviour split over two syllables (on
    alternate bouts), boundaries two frames late, and 3 % of frames in a random syllable."""
    rng = np.random.default_rng(seed)
    split = np.empty_like(truth)
    for i, (s, e, b) in enumerate(bouts_from_labels(truth)):
        split[s:e] = 2 * b + i % 2
    late = np.concatenate([split[:2], split[:-2]])
    noise = rng.random(truth.size) < 0.03
    late[noise] = rng.integers(0, STATES, noise.sum())
    return late


def add_session(client: Any, experiment_id: int, model_id: int, seconds: float, seed: int):
    """A segmented session and its synthetic truth."""
    _frames, truth = render_session(seconds, fps=FPS, seed=seed)
    pred = predicted(truth.behaviour, seed)
    n = truth.n_frames
    rel = f"features/{uuid.uuid4().hex}.npz"
    factories.write_features(Path(client.app.state.storage.abspath("")), rel, n, 50.0, fps=FPS)
    with client.app.state.session_factory() as db:
        session = factories.video_session(db, experiment_id, frames=n, fps=FPS, features_path=rel)
        syllables.record_segmentation(
            db, session_id=session.id, model_id=model_id, syllable=pred,
            probability=np.ones(n), bouts=bouts_from_labels(pred),
            transition_counts=np.zeros((STATES, STATES)), usage=np.zeros(STATES),
            times=np.arange(n) / FPS, fps=FPS,
        )  # fmt: skip
        db.commit()
        return session.id, truth, pred


def new_experiment(client: Any) -> tuple[int, int]:
    eid = client.post("/api/experiments", json={"name": "Labels"}).json()["id"]
    with client.app.state.session_factory() as db:
        model = factories.syllable_model(db, eid, states=STATES)
        db.commit()
        return eid, model.id


def upload(client: Any, session_id: int, name: str, data: bytes, rater: str = "") -> Any:
    return client.post(
        f"/api/sessions/{session_id}/annotations",
        files={"file": (name, data, "text/csv")},
        data={"rater": rater},
    )


@pytest.fixture
def client(make_app, backend) -> Any:
    return make_app(backend)


def test_the_true_labels_reproduce_the_projects_own_scores(client, tmp_path) -> None:
    eid, model_id = new_experiment(client)
    sid, truth, pred = add_session(client, eid, model_id, seconds=40, seed=1)
    truth.write_csv(tmp_path / "truth.csv")  # the synthetic set's own truth file
    bouts_before = client.get(f"/api/sessions/{sid}/bouts.csv").text

    made = upload(client, sid, "truth.csv", (tmp_path / "truth.csv").read_bytes(), "synth")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["format"] == "frames" and body["scored_frames"] == truth.n_frames
    assert set(body["behaviours"]) == {truth.names[b] for b in np.unique(truth.behaviour)}

    got = client.get(f"/api/annotations/{body['id']}/agreement")
    assert got.status_code == 200, got.text
    score = got.json()
    assert score["model_id"] == model_id and score["frames"] == truth.n_frames
    assert abs(score["ari"] - ari(truth.behaviour, pred)) < 1e-9
    assert abs(score["nmi"] - nmi(truth.behaviour, pred)) < 1e-9
    # Splitting a behaviour costs nothing under a many-to-one mapping; lateness and noise do.
    assert score["mapping"] == {str(k): truth.names[k // 2] for k in score["syllables"]}
    assert score["accuracy"] == pytest.approx(np.mean(pred // 2 == truth.behaviour), abs=1e-12)
    assert all(v > 0.8 for v in score["f1"].values())
    assert score["boundary_tolerance_frames"] == 6 and score["boundary_tolerance_s"] == 0.2
    assert score["boundary_agreement"] > 0.95 > score["boundary_chance"]
    table = np.asarray(score["contingency"])
    assert table.sum() == truth.n_frames and table.shape[1] == len(body["behaviours"])

    pooled = client.get(f"/api/experiments/{eid}/agreement").json()
    assert len(pooled) == 1 and pooled[0]["rater"] == "synth"

    # The session's own bouts, exported for BORIS and read back, agree with it perfectly.
    boris = client.get(f"/api/sessions/{sid}/bouts.boris.csv")
    assert boris.status_code == 200 and boris.text.startswith("Observation id,")
    own = upload(client, sid, "own.boris.csv", boris.content, "itself").json()
    assert own["format"] == "boris" and own["scored_frames"] == truth.n_frames
    itself = client.get(f"/api/annotations/{own['id']}/agreement").json()
    assert itself["ari"] == pytest.approx(1.0) and itself["accuracy"] == 1.0
    assert client.delete(f"/api/annotations/{own['id']}").status_code == 204
    assert pooled[0]["ari"] == pytest.approx(score["ari"], abs=1e-12)

    # Labels never touch the segmentation, and go without a trace of it.
    assert client.get(f"/api/sessions/{sid}/bouts.csv").text == bouts_before
    assert (
        client.get(f"/api/annotations/{body['id']}/file").content
        == (tmp_path / "truth.csv").read_bytes()
    )
    assert client.delete(f"/api/annotations/{body['id']}").status_code == 204
    assert client.get(f"/api/sessions/{sid}/annotations").json() == []
    assert client.get(f"/api/sessions/{sid}/bouts.csv").text == bouts_before


def test_a_bad_file_says_its_line_and_column_and_stores_nothing(client) -> None:
    eid, model_id = new_experiment(client)
    sid, _truth, _pred = add_session(client, eid, model_id, seconds=5, seed=2)
    bad = b"start_s,end_s,behaviour\n0,1.5,walk\n1.5,one,groom\n"
    answer = upload(client, sid, "scored.csv", bad)
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "scored.csv: line 3, column 'end_s': 'one' is not a number of seconds."
    )
    header = upload(client, sid, "scored.csv", b"when,what\n1,walk\n")
    assert header.status_code == 422 and "line 1" in header.json()["detail"]
    assert client.get(f"/api/sessions/{sid}/annotations").json() == []


def test_reading_the_frame_times_does_not_block_the_event_loop(
    make_app, tmp_path, monkeypatch
) -> None:
    """With a bucket, the frame times come from a feature file that may be downloaded first:
    that must happen in a worker thread, never on the event loop."""
    import asyncio

    from app.annotations import service as annotations

    client = make_app(backend_env(tmp_path))
    eid, model_id = new_experiment(client)
    sid, truth, _pred = add_session(client, eid, model_id, seconds=3, seed=5)
    on_loop: list[bool] = []
    real = annotations.frame_times

    def frame_times(storage: Any, session: Any) -> np.ndarray:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(storage, session)

    monkeypatch.setattr(annotations, "frame_times", frame_times)
    rows = "frame,behaviour\n" + "".join(f"{i},walk\n" for i in range(truth.n_frames))
    answer = upload(client, sid, "scored.csv", rows.encode())
    assert answer.status_code == 201, answer.text
    assert on_loop == [False]


def test_raters_are_pooled_over_sessions_but_kept_apart_and_exported(client) -> None:
    eid, model_id = new_experiment(client)
    first, truth1, _ = add_session(client, eid, model_id, seconds=20, seed=3)
    second, truth2, _ = add_session(client, eid, model_id, seconds=20, seed=4)

    def intervals(truth: Any) -> bytes:
        rows = ["start_s,end_s,behaviour"] + [
            f"{s / FPS},{e / FPS},{truth.names[b]}" for s, e, b in truth.bouts()
        ]
        return "\n".join(rows).encode()

    for sid, truth in ((first, truth1), (second, truth2)):
        assert upload(client, sid, "ana.csv", intervals(truth), "Ana").status_code == 201
    assert upload(client, first, "ben.csv", intervals(truth1), "Ben").status_code == 201

    # Ana corrects her file of the first session: the newest one counts, once.
    fixed = upload(client, first, "行動 v2.csv", intervals(truth1), "Ana").json()
    download = client.get(f"/api/annotations/{fixed['id']}/file")
    assert download.status_code == 200
    assert "filename*=UTF-8''%E8%A1%8C%E5%8B%95%20v2.csv" in download.headers["content-disposition"]

    pooled = {r["rater"]: r for r in client.get(f"/api/experiments/{eid}/agreement").json()}
    assert (
        fixed["id"] in pooled["Ana"]["annotation_ids"] and len(pooled["Ana"]["annotation_ids"]) == 2
    )
    assert pooled["Ana"]["session_ids"] == [first, second]
    assert pooled["Ana"]["frames"] == truth1.n_frames + truth2.n_frames
    assert pooled["Ben"]["session_ids"] == [first] and pooled["Ben"]["frames"] == truth1.n_frames
    single = client.get(
        f"/api/annotations/{pooled['Ben']['annotation_ids'][0]}/agreement?model_id={model_id}"
    ).json()
    assert single["ari"] == pytest.approx(pooled["Ben"]["ari"], abs=1e-12)

    archive = client.get(f"/api/experiments/{eid}/export.zip")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        labels = sorted(n for n in zf.namelist() if n.startswith("annotations/"))
        assert len(labels) == 4 and any("_Ben_" in n for n in labels)  # every file, as uploaded
        assert zf.read(labels[0]).startswith(b"start_s,end_s,behaviour")
        exported = {r["rater"]: r for r in json.loads(zf.read("agreement.json"))}
    assert exported["Ana"]["ari"] == pytest.approx(pooled["Ana"]["ari"], abs=1e-12)


def test_agreement_needs_a_segmentation_by_that_model(make_app, tmp_path) -> None:
    client = make_app(backend_env(tmp_path))
    eid, _model_id = new_experiment(client)
    with client.app.state.session_factory() as db:
        bare = factories.video_session(db, eid, frames=90, fps=FPS, features_path=None)
        other = factories.syllable_model(db, eid, version=2, states=STATES)
        db.commit()
        bare_id, other_id = bare.id, other.id
    made = upload(client, bare_id, "a.csv", b"frame,behaviour\n0,walk\n1,walk\n")
    assert made.status_code == 201, made.text
    missing = client.get(f"/api/annotations/{made.json()['id']}/agreement")
    assert missing.status_code == 404 and "has not been segmented by model v2" in missing.text
    foreign = client.get(f"/api/annotations/{made.json()['id']}/agreement?model_id=999999")
    assert foreign.status_code == 404
    huge = client.get(f"/api/annotations/{made.json()['id']}/agreement?model_id={2**63}")
    assert huge.status_code == 422  # no database integer: refused before any query
    assert client.get(f"/api/experiments/{eid}/agreement?model_id={other_id}").json() == []
    # An experiment without a ready model has nothing to compare yet: no error, no rows.
    fresh = client.post("/api/experiments", json={"name": "No model yet"}).json()["id"]
    assert client.get(f"/api/experiments/{fresh}/agreement").json() == []
