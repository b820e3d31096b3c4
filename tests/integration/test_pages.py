"""Server-rendered pages against the real database: they render, escape, 404 in words, and
load plotly.js and their scripts from this server only (labs and CI may be offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEEPOF, REPO, backend_env


@pytest.fixture
def client(make_app, tmp_path) -> Any:
    return make_app(backend_env(tmp_path))


def page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert match, "the page embeds its data"
    return dict(json.loads(match.group(1)))


def local_assets(html: str) -> list[str]:
    """Every script and stylesheet the page loads; all must come from this server."""
    urls = re.findall(r'<script[^>]+src="([^"]+)"', html) + re.findall(
        r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', html
    )
    for url in urls:
        assert url.startswith("/static/"), f"{url} is not served locally"
    return urls


def make_experiment(client: Any, name: str = "Open field") -> dict[str, Any]:
    response = client.post("/api/experiments", json={"name": name, "description": "week 1"})
    assert response.status_code == 201
    return dict(response.json())


def upload(client: Any, experiment_id: int) -> dict[str, Any]:
    with DEEPOF.open("rb") as fh:
        response = client.post(
            f"/api/experiments/{experiment_id}/sessions",
            files={"file": (DEEPOF.name, fh, "video/mp4")},
            data={"subject": "mouse <1>", "cohort": "saline"},
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_home_lists_experiments_escaped_with_create_form(client) -> None:
    empty = client.get("/")
    assert empty.status_code == 200
    assert 'id="create-experiment"' in empty.text
    assert "No experiments yet" in empty.text
    make_experiment(client, "Open field")
    make_experiment(client, "<script>alert(1)</script>")
    html = client.get("/").text
    assert "Open field" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("data-experiment-id=") == 2
    assert 'id="experiment-search"' in html
    assert "/static/js/home.js" in local_assets(html)


def test_experiment_page_has_sessions_upload_fit_and_animals(client) -> None:
    experiment = make_experiment(client)
    response = client.get(f"/experiments/{experiment['id']}")
    assert response.status_code == 200
    html = response.text
    assert page_data(html) == {"experiment_id": experiment["id"]}
    for element in (
        'id="sessions"',
        'id="dropzone"',
        'id="file-input"',
        'id="assign-form"',
        'id="fit-form"',
        'id="cohort-form"',
        'id="subjects"',
        f'href="/api/experiments/{experiment["id"]}/export.zip"',
    ):
        assert element in html, element
    assets = local_assets(html)
    assert "/static/vendor/plotly.min.js" in assets and "/static/js/experiment.js" in assets


def test_session_viewer_page(client, shared_data) -> None:
    experiment = make_experiment(client)
    session = upload(client, experiment["id"])
    response = client.get(f"/sessions/{session['id']}")
    assert response.status_code == 200
    html = response.text
    data = page_data(html)
    assert data["session_id"] == session["id"]
    assert data["experiment_id"] == experiment["id"]
    for element in ('id="video"', 'id="ethogram"', 'id="now-syllable"', 'id="legend"'):
        assert element in html, element
    assert f'href="/api/sessions/{session["id"]}/ethogram.csv"' in html
    assert f'href="/api/sessions/{session["id"]}/bouts.csv"' in html
    assert "mouse &lt;1&gt;" in html and "saline" in html
    assert f'href="/experiments/{experiment["id"]}"' in html
    assert "/static/js/viewer.js" in local_assets(html)


def test_model_and_gallery_pages(client) -> None:
    from app.syllables.models import SyllableModel

    experiment = make_experiment(client)
    with client.app.state.session_factory() as db:
        model = SyllableModel(experiment_id=experiment["id"], version=3, states=4)
        db.add(model)
        db.commit()
        model_id = model.id
    page = client.get(f"/models/{model_id}")
    assert page.status_code == 200
    assert "Model version 3" in page.text
    assert page_data(page.text) == {"model_id": model_id, "experiment_id": experiment["id"]}
    assert f'href="/models/{model_id}/syllables"' in page.text
    assert "/static/js/model.js" in local_assets(page.text)
    gallery = client.get(f"/models/{model_id}/syllables")
    assert gallery.status_code == 200
    assert 'id="gallery"' in gallery.text
    assert "/static/js/gallery.js" in local_assets(gallery.text)


@pytest.mark.parametrize(
    "path", ["/experiments/999", "/sessions/999", "/models/999", "/models/999/syllables"]
)
def test_unknown_pages_are_404_in_words(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "999 does not exist" in response.text


def test_wrong_id_type_is_422(client) -> None:
    assert client.get("/experiments/abc").status_code == 422


def test_plotly_is_served_locally_and_gzipped(client) -> None:
    plain = client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers
    # The cartesian partial bundle that `make` installs (scripts/fetch-plotly), not the 4.8 MB
    # full one: every chart the pages draw is in it (the browser tests draw them all).
    assert b"plotly.js (cartesian" in plain.content[:300]
    assert 1_000_000 < len(plain.content) < 2_000_000
    zipped = client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decompressed it
    assert zipped.num_bytes_downloaded < 600_000


def test_every_script_is_served_and_no_template_uses_a_cdn(client) -> None:
    for script in sorted((REPO / "static" / "js").glob("*.js")):
        response = client.get(f"/static/js/{script.name}")
        assert response.status_code == 200, script.name
        # Module imports stay relative to this server.
        for target in re.findall(r'from "([^"]+)"', response.text):
            assert target.startswith("./"), (script.name, target)
    for template in Path(REPO / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), template.name
