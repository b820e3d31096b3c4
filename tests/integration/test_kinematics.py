"""Kinematics per syllable through the model API, in the unit the sessions allow (fast: rows
written through the ORM)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.syllables import service as syllables
from model.ethogram import bouts_from_labels
from tests import factories

FRAMES, FPS = 900, 30.0


@pytest.fixture
def client(make_app, backend) -> Any:
    return make_app(backend)


def test_syllable_kinematics_in_body_lengths_then_in_cm(client) -> None:
    """Speed per syllable in the gallery's unit: body lengths (each animal's typical size)
    until every session has a scale, then cm; a session's own scale beats the experiment's."""
    eid = client.post("/api/experiments", json={"name": "Kinematics"}).json()["id"]
    root = Path(client.app.state.storage.abspath(""))
    labels = np.repeat([0, 1], FRAMES // 2)
    ids = []
    with client.app.state.session_factory() as db:
        model = factories.syllable_model(db, eid, states=2)
        for speed in (30.0, 60.0):  # px/s, constant over the session
            rel = f"features/{uuid.uuid4().hex}.npz"
            factories.write_features(root, rel, FRAMES, speed)
            session = factories.video_session(db, eid, frames=FRAMES, fps=FPS, features_path=rel)
            session.quality = {"body_area_px2": 100.0}  # body_scale: 1.85 * 10 = 18.5 px
            syllables.record_segmentation(
                db, session_id=session.id, model_id=model.id, syllable=labels,
                probability=np.ones(FRAMES), bouts=bouts_from_labels(labels),
                transition_counts=np.zeros((2, 2)), usage=np.zeros(2),
                times=np.arange(FRAMES) / FPS, fps=FPS,
            )  # fmt: skip
            ids.append(session.id)
        db.commit()
        model_id = model.id

    def speeds() -> tuple[str, list[float | None]]:
        body = client.get(f"/api/models/{model_id}").json()
        return body["kinematics_unit"], [s["speed"] for s in body["syllables"]]

    unit, per_syllable = speeds()
    # Each syllable spans half of each session: frames at 30 and 60 px/s, median between.
    assert unit == "body lengths"
    assert per_syllable[0] == pytest.approx(45.0 / 18.5, rel=1e-3)
    client.patch(f"/api/sessions/{ids[0]}", json={"px_per_cm": 3.0})
    assert speeds()[0] == "body lengths"  # one session without a scale: no cm yet
    client.patch(f"/api/experiments/{eid}", json={"px_per_cm": 6.0})
    unit, per_syllable = speeds()
    assert unit == "cm"
    assert per_syllable[1] == pytest.approx((10.0 + 10.0) / 2, rel=1e-3)  # 30/3 and 60/6
    assert client.get(f"/api/sessions/{ids[0]}").json()["px_per_cm"] == 3.0
    bad = client.patch(f"/api/sessions/{ids[0]}", json={"px_per_cm": -1})
    assert bad.status_code == 422
    client.patch(f"/api/experiments/{eid}", json={"clear_px_per_cm": True})
    assert speeds()[0] == "body lengths"
