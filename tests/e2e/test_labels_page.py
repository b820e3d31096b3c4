"""A lab's own labels in Chromium: on a segmented session (written through the ORM), a good
label file is uploaded and its agreement drawn (figures, heatmap, F1), a bad one is refused
with its line and column, and the experiment page pools the rater's sessions. Screenshots land
in ``test-output/screenshots/``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, screenshot
from tests.integration.test_comparison import populate

pytestmark = [pytest.mark.e2e]
NAMES = ["pause", "walk", "walk", "groom", "rear", "sniff"]  # syllable -> what a person saw


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("e2e-labels"), with_worker=False).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def experiment(server: LiveServer) -> dict[str, Any]:
    from app.core.config import Settings
    from app.core.db import engine_for, session_factory

    settings = Settings(var_dir=Path(server.env["SYLLABARY_VAR_DIR"]))
    engine = engine_for(settings.sqlalchemy_url)
    try:
        return populate(
            session_factory(engine), settings.files_dir, design=(("saline", 2, 1),), frames=1800
        )
    finally:
        engine.dispose()
        engine_for.cache_clear()


def scored_file(server: LiveServer, session_id: int) -> bytes:
    """Intervals a person might have scored: the session's bouts, named by ``NAMES``."""
    text = httpx.get(
        f"{server.url}/api/sessions/{session_id}/bouts.csv", headers=server.auth, timeout=30
    ).text
    rows = ["start_s,end_s,behaviour"]
    for bout in csv.DictReader(io.StringIO(text)):
        k = int(bout["syllable"])
        rows.append(f"{bout['start_s']},{bout['end_s']},{NAMES[k]}")
    return "\n".join(rows).encode()


def upload(page: Any, name: str, data: bytes, rater: str = "") -> None:
    page.set_input_files("#labels-file", files=[{"name": name, "mimeType": "text/csv",
                                                 "buffer": data}])  # fmt: skip
    page.fill("#labels-rater", rater)
    page.click("#labels-form button[type=submit]")


def test_labels_upload_agreement_and_errors(
    server: LiveServer, experiment: dict[str, Any], page: Any
) -> None:
    first, second = experiment["sessions"]
    page.goto(f"{server.url}/sessions/{first}")
    page.wait_for_selector("#ethogram[data-ready='true']")
    assert "No labels yet" in page.inner_text("#labels-list")

    upload(page, "ana-m1.csv", scored_file(server, first), "Ana")
    page.wait_for_selector("#labels-agreement[data-ready='true']")
    assert "ana-m1.csv" in page.inner_text("#labels-list")
    assert "5 behaviours" in page.inner_text("#labels-message")
    figures = page.inner_text("#labels-agreement .agreement-figures")
    assert "NMI" in figures and "ARI" in figures and "chance" in figures
    # Syllables 1 and 2 both mean "walk": every frame is right under the many-to-one mapping.
    assert "100%" in figures
    heatmap = page.evaluate(
        "() => { const d = document.querySelector('.agreement-heatmap').data[0];"
        " return [d.y, d.x.length]; }"
    )
    assert set(heatmap[0]) == set(NAMES) and heatmap[1] == 6  # behaviours × syllables
    f1 = page.inner_text("#labels-agreement .agreement-f1")
    assert "walk" in f1 and "syllable 1, syllable 2" in f1
    screenshot(page, "session-labels-agreement")

    upload(page, "broken.csv", b"start_s,end_s,behaviour\n0,1.5,walk\n1.5,one,groom\n")
    page.wait_for_selector("#labels-message.error")
    assert page.inner_text("#labels-message") == (
        "broken.csv: line 3, column 'end_s': 'one' is not a number of seconds."
    )
    assert page.locator("#labels-list tr").count() == 1  # nothing stored
    screenshot(page, "session-labels-bad-file")

    page.goto(f"{server.url}/sessions/{second}")
    page.wait_for_selector("#ethogram[data-ready='true']")
    upload(page, "ana-m2.csv", scored_file(server, second), "Ana")
    page.wait_for_selector("#labels-agreement[data-ready='true']")

    page.goto(f"{server.url}/experiments/{experiment['experiment']}")
    page.wait_for_selector("#agreement-card:not(.hidden) .agreement-heatmap .main-svg")
    card = page.inner_text("#agreement-card")
    assert "Labels by Ana" in card and "2 sessions pooled" in card
    page.locator("#agreement-card").scroll_into_view_if_needed()
    screenshot(page, "experiment-labels-agreement")


def test_gallery_shows_kinematics_per_syllable(
    server: LiveServer, experiment: dict[str, Any], page: Any
) -> None:
    gallery = f"{server.url}/models/{experiment['model']}/syllables"
    page.goto(gallery)
    page.wait_for_selector("body[data-ready='true']")
    # These sessions carry no body size: pixels, said so.
    assert "Kinematics in px" in page.inner_text("#gallery-message")
    assert "px/s" in page.inner_text(".syllable-card .kinematics")
    server.api("PATCH", f"/api/experiments/{experiment['experiment']}", json={"px_per_cm": 4.0})
    page.goto(gallery)
    page.wait_for_selector("body[data-ready='true']")
    line = page.inner_text(".syllable-card .kinematics")
    # The saline cohort's mouse moves at 40 px/s in every frame: 10 cm/s at 4 px per cm.
    assert "speed 10 cm/s" in line, line
    screenshot(page, "gallery-kinematics")


def test_grouping_syllables_in_the_gallery_changes_the_viewer_and_undoes(
    server: LiveServer, experiment: dict[str, Any], page: Any
) -> None:
    gallery = f"{server.url}/models/{experiment['model']}/syllables"
    page.goto(gallery)
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector("#group-suggestions li")
    assert "No syllables are grouped" in page.inner_text("#groups-current")
    assert "median bout" in page.inner_text("#group-suggestions")
    page.fill("#group-name", "walk")
    page.fill("#group-syllables", "1, 2")
    page.click("#group-form button[type=submit]")
    page.wait_for_selector("#groups-message.ok")
    assert "version 1" in page.inner_text("#groups-message")
    assert page.inner_text("#syllable-1 .group-badge") == "in walk"
    assert page.inner_text("#syllable-2 .group-badge") == "in walk"
    screenshot(page, "gallery-groups")

    session = experiment["sessions"][0]
    page.goto(f"{server.url}/sessions/{session}")
    page.wait_for_selector("#ethogram[data-ready='true']")
    legend = page.inner_text("#legend")
    assert "walk" in legend and "syllable 2" not in legend
    screenshot(page, "viewer-grouped")

    page.goto(gallery)
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector("#group-suggestions li")
    page.click("#group-undo")
    page.wait_for_selector("#groups-message.ok")
    assert "No syllables are grouped now" in page.inner_text("#groups-message")
    assert page.locator(".group-badge").count() == 0
    page.goto(f"{server.url}/sessions/{session}")
    page.wait_for_selector("#ethogram[data-ready='true']")
    assert "syllable 2" in page.inner_text("#legend")
