"""Grouping syllables: a versioned, undoable merge that the viewer, the exports, the agreement
and the comparison (with its methods text) all apply, while the model and the stored bouts stay
as they are. On the comparison's simulated experiment, whose drug cohort moves usage from
syllable 2 to syllable 1: grouped, the two are one behaviour whose usage did not change."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import backend_env
from tests.integration.test_comparison import populate


@pytest.fixture
def client_and_db(make_app: Any, tmp_path: Any) -> tuple[Any, Any, Any]:
    client = make_app(backend_env(tmp_path))
    return client, client.app.state.session_factory, client.app.state.storage.abspath("")


def _stored_bouts(factory: Any) -> int:
    from app.syllables.models import Bout

    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(Bout)) or 0)


def test_group_view_export_compare_and_undo(client_and_db) -> None:
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 5, 1), ("drug", 5, 1)), frames=3000)
    eid, model, sid = ids["experiment"], ids["model"], ids["sessions"][0]
    base = f"/api/models/{model}/groupings"
    assert client.get(base).json() == {"current": None, "history": []}
    raw_viewer = client.get(f"/api/sessions/{sid}/viewer").json()
    before = client.get(f"/api/experiments/{eid}/comparison").json()
    assert {s["index"] for s in before["syllables"] if s["significant"]} == {1, 2}
    stored = _stored_bouts(factory)

    made = client.post(base, json={"groups": [{"name": "explore", "syllables": [2, 1]}]})
    assert made.status_code == 201, made.text
    assert made.json()["current"]["version"] == 1
    assert made.json()["current"]["groups"] == [{"name": "explore", "syllables": [1, 2]}]

    # The viewer: syllable 2's bouts are shown as the group, adjacent ones joined.
    viewer = client.get(f"/api/sessions/{sid}/viewer").json()
    assert 2 not in viewer["bouts"]["syllable"]
    assert len(viewer["bouts"]["start"]) < len(raw_viewer["bouts"]["start"])
    assert viewer["bouts"]["end"][-1] == raw_viewer["bouts"]["end"][-1]
    assert {s["index"]: s["name"] for s in viewer["syllables"]}[1] == "explore"
    assert viewer["model"]["grouping_version"] == 1
    # Exports name the group.
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/sessions/{sid}/bouts.csv").text)))
    assert {r["syllable_name"] for r in rows if r["syllable"] == "1"} == {"explore"}
    assert not any(r["syllable"] == "2" for r in rows)
    # The comparison counts the group as one: the usage moved between 1 and 2 cancels out.
    grouped = client.get(f"/api/experiments/{eid}/comparison").json()
    by_index = {s["index"]: s for s in grouped["syllables"]}
    assert by_index[1]["label"] == "explore" and not by_index[1]["significant"]
    assert not any(s["significant"] for s in grouped["syllables"])
    assert "grouping version 1: 'explore' = syllables 1 + 2" in grouped["methods"]
    assert _stored_bouts(factory) == stored  # nothing stored was rewritten
    archive = client.get(f"/api/experiments/{eid}/export.zip")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        meta = json.loads(zf.read("model.json"))
        table = list(csv.DictReader(io.StringIO(zf.read("syllables.csv").decode())))
    assert meta["grouping"] == {"version": 1, "groups": [{"name": "explore", "syllables": [1, 2]}]}
    assert [r["group"] for r in table[:4]] == ["", "explore", "explore", ""]

    # A second version, then undo: back to version 1, then to no grouping at all.
    two = client.post(
        base,
        json={"groups": [{"name": "explore", "syllables": [1, 2]},
                         {"name": "still", "syllables": [3, 4]}]},
    )  # fmt: skip
    assert two.json()["current"]["version"] == 2
    undone = client.post(f"{base}/undo").json()
    assert undone["current"]["version"] == 1 and len(undone["history"]) == 2
    assert undone["history"][0]["undone_at"] is not None
    assert client.post(f"{base}/undo").json()["current"] is None
    assert client.get(f"/api/sessions/{sid}/viewer").json()["bouts"] == raw_viewer["bouts"]
    after = client.get(f"/api/experiments/{eid}/comparison").json()
    assert "grouping" not in after["methods"]
    nothing = client.post(f"{base}/undo")
    assert nothing.status_code == 409 and "no grouping to undo" in nothing.json()["detail"]


def test_groupings_that_cannot_be_applied_say_why(client_and_db) -> None:
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 3, 1),), frames=600)
    base = f"/api/models/{ids['model']}/groupings"
    cases = [
        ([{"name": "a", "syllables": [1, 2]}, {"name": "b", "syllables": [2, 3]}],
         "Syllable 2 is in both 'a' and 'b'"),
        ([{"name": "a", "syllables": [1, 99]}], "Syllable 99 is not a syllable of this model"),
        ([{"name": "a", "syllables": [1, 2]}, {"name": "a", "syllables": [3, 4]}],
         "Two groups are called 'a'"),
    ]  # fmt: skip
    for groups, words in cases:
        answer = client.post(base, json={"groups": groups})
        assert answer.status_code == 422 and words in answer.json()["detail"], answer.text
    one = client.post(base, json={"groups": [{"name": "a", "syllables": [1]}]})
    assert one.status_code == 422  # a group of one merges nothing
    assert client.get(base).json()["history"] == []


def test_suggestions_give_their_reasons(client_and_db) -> None:
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 3, 1), ("drug", 3, 1)), frames=3000)
    suggestions = client.get(f"/api/models/{ids['model']}/grouping-suggestions").json()
    assert 1 <= len(suggestions) <= 5
    assert all(len(s["syllables"]) == 2 and "median bout" in s["reason"] for s in suggestions)
    assert [s["distance"] for s in suggestions] == sorted(s["distance"] for s in suggestions)
    first = suggestions[0]["syllables"]
    client.post(f"/api/models/{ids['model']}/groupings",
                json={"groups": [{"name": "x", "syllables": first}]})  # fmt: skip
    again = client.get(f"/api/models/{ids['model']}/grouping-suggestions").json()
    assert not any(set(s["syllables"]) & set(first) for s in again)  # grouped: not suggested
