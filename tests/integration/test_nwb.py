"""A session exported as NWB and read back by pynwb: subject and cohort, the track, the
syllable of every frame and one interval row per bout (fast: rows written through the ORM)."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pynwb import NWBHDF5IO

from app.syllables import service as syllables
from model.ethogram import bouts_from_labels
from tests import factories

FRAMES, FPS, STATES = 900, 30.0, 5


@pytest.fixture
def client(make_app, backend) -> Any:
    return make_app(backend)


def test_a_session_as_nwb_reads_back_with_every_bout(client, tmp_path) -> None:
    eid = client.post("/api/experiments", json={"name": "Open field"}).json()["id"]
    rel = f"features/{uuid.uuid4().hex}.npz"
    factories.write_features(Path(client.app.state.storage.abspath("")), rel, FRAMES, 45.0)
    labels = np.repeat(np.random.default_rng(0).integers(0, STATES, 60), 15)
    with client.app.state.session_factory() as db:
        model = factories.syllable_model(db, eid, states=STATES)
        session = factories.video_session(db, eid, frames=FRAMES, fps=FPS, features_path=rel)
        syllables.record_segmentation(
            db, session_id=session.id, model_id=model.id, syllable=labels,
            probability=np.ones(FRAMES), bouts=bouts_from_labels(labels),
            transition_counts=np.zeros((STATES, STATES)), usage=np.zeros(STATES),
            times=np.arange(FRAMES) / FPS, fps=FPS,
        )  # fmt: skip
        db.commit()
        sid, model_id = session.id, model.id
    client.patch(f"/api/sessions/{sid}", json={"subject": "m7", "cohort": "drug"})
    subject = client.get(f"/api/experiments/{eid}/subjects").json()[0]
    client.patch(f"/api/subjects/{subject['id']}", json={"sex": "F", "age": "P70D"})
    rear = client.get(f"/api/models/{model_id}").json()["syllables"][2]
    client.patch(f"/api/syllables/{rear['id']}", json={"name": "rear"})

    answer = client.get(f"/api/sessions/{sid}/session.nwb")
    assert answer.status_code == 200, answer.text
    assert 'filename="' in answer.headers["content-disposition"]
    (tmp_path / "s.nwb").write_bytes(answer.content)
    bouts = list(csv.DictReader(io.StringIO(client.get(f"/api/sessions/{sid}/bouts.csv").text)))
    with NWBHDF5IO(str(tmp_path / "s.nwb"), mode="r") as nwb_io:
        nwb = nwb_io.read()
        assert nwb.subject.subject_id == "m7" and nwb.subject.sex == "F"
        assert nwb.subject.age == "P70D" and "cohort: drug" in nwb.subject.description
        assert nwb.subject.species == "Mus musculus"
        behavior = nwb.processing["behavior"]
        centroid = behavior["Position"]["centroid"]
        assert centroid.data.shape == (FRAMES, 2)
        assert np.allclose(centroid.data[:, 0], np.arange(FRAMES) * 45.0 / FPS)
        per_frame = behavior["syllables"]
        assert np.array_equal(per_frame.data[:], labels)
        assert "2 = rear" in per_frame.description
        table = nwb.intervals["syllable_bouts"]
        assert len(table) == len(bouts) == len(bouts_from_labels(labels))
        assert list(table["syllable"][:]) == [int(b["syllable"]) for b in bouts]
        assert "rear" in list(table["syllable_name"][:])
        assert np.allclose(table["start_time"][:], [float(b["start_s"]) for b in bouts])
        assert np.allclose(table["stop_time"][:], [float(b["end_s"]) for b in bouts])


def test_an_unsegmented_session_has_no_nwb_yet(client) -> None:
    eid = client.post("/api/experiments", json={"name": "Empty"}).json()["id"]
    with client.app.state.session_factory() as db:
        sid = factories.video_session(db, eid).id
        db.commit()
    answer = client.get(f"/api/sessions/{sid}/session.nwb")
    assert answer.status_code == 404 and "not been segmented" in answer.json()["detail"]
