"""The cohort comparison page in Chromium: a segmented experiment (5 saline + 5 drug animals,
written through the ORM with a planted effect on syllables 1 and 2) is compared; the page
shows both flagged, draws every chart, links syllables to the gallery, downloads the CSVs and
warns when only one cohort is left. A screenshot lands in ``test-output/screenshots/``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, screenshot
from tests.integration.test_comparison import STATES, _recorded, populate

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("e2e-comparison"), with_worker=False).start()
    try:
        yield live
    finally:
        live.stop()


def _populate(server: LiveServer, **kwargs: Any) -> dict[str, Any]:
    from app.core.config import Settings
    from app.core.db import engine_for, session_factory

    settings = Settings(var_dir=Path(server.env["SYLLABARY_VAR_DIR"]))
    engine = engine_for(settings.sqlalchemy_url)
    try:
        return populate(
            session_factory(engine),
            settings.files_dir,
            design=(("saline", 5, 1), ("drug", 5, 1)),
            frames=4000,
            **kwargs,
        )
    finally:
        engine.dispose()
        engine_for.cache_clear()


@pytest.fixture(scope="module")
def experiment(server: LiveServer) -> dict[str, Any]:
    return _populate(server)


def test_comparison_page(server: LiveServer, experiment: dict[str, Any], page: Any) -> None:
    eid = experiment["experiment"]
    model_id = experiment["model"]
    page.goto(f"{server.url}/experiments/{eid}/comparison?cohorts=saline,drug")
    page.wait_for_selector("body[data-comparison-ready='1']")
    # The picker lists the cohorts in the order asked: the reference first.
    order = page.eval_on_selector_all(
        "#cohort-form input[name=cohort]", "els => els.map(e => e.value)"
    )
    assert order == ["saline", "drug"]
    assert "2 of 6 syllables" in page.inner_text("#verdict")
    assert "saline: 5 animals" in page.inner_text("#verdict")

    # Usage: one trace per cohort, one dot per animal and syllable; sorted by effect size.
    traces = page.evaluate(
        "() => document.getElementById('usage-chart').data.map(t => [t.name, t.y.length])"
    )
    assert traces == [["saline", 5 * STATES], ["drug", 5 * STATES]]
    first_two = page.evaluate(
        "() => [...new Set(document.getElementById('usage-chart').data[0].x)].slice(0, 2)"
    )
    assert all("★" in label for label in first_two)
    stars = page.evaluate("() => document.getElementById('usage-chart').layout.annotations.length")
    assert stars == 2
    # Tick labels are links to the gallery.
    hrefs = page.evaluate(
        """() => [...document.querySelectorAll('#usage-chart .xtick a')]
                 .map(a => a.getAttribute('href') || a.getAttribute('xlink:href'))"""
    )
    assert f"/models/{model_id}/syllables#syllable-1" in hrefs

    significant = page.locator("#syllable-stats tr.significant")
    assert significant.count() == 2
    assert {significant.nth(i).get_attribute("data-syllable") for i in range(2)} == {"1", "2"}

    verdict = page.inner_text("#fingerprint-verdict")
    assert "% of animals" in verdict and "as a whole differs" in verdict, verdict
    heat = page.evaluate("() => document.getElementById('fingerprint-chart').data[0].z.length")
    assert heat == 10
    transition = page.evaluate("() => document.getElementById('transition-chart').data[0].z.length")
    assert transition == STATES
    durations = page.evaluate(
        "() => document.getElementById('duration-chart').data.map(t => t.name)"
    )
    assert durations == ["saline", "drug"]
    methods = page.inner_text("#methods")
    assert "Mann–Whitney" in methods and "Benjamini–Hochberg" in methods
    assert page.locator("#warnings").is_hidden()
    # Recording conditions: only the frame rate is known here, the same in both cohorts.
    assert page.locator("#recording-conditions tr[data-differs='false']").count() == 1
    assert "30 frames/s" in page.inner_text("#recording-conditions")
    screenshot(page, "comparison")

    # CSV from the page's own link.
    with page.expect_download() as info:
        page.click("#usage-csv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert len(rows) == 10 * STATES and {r["cohort"] for r in rows} == {"saline", "drug"}

    # A significant syllable links to its gallery card.
    index = significant.first.get_attribute("data-syllable")
    significant.first.locator("a").first.click()
    page.wait_for_url(f"**/models/{model_id}/syllables#syllable-{index}")
    page.wait_for_selector(f"#syllable-{index}.syllable-card")
    assert not page.js_errors, page.js_errors

    # One cohort alone: a warning, no claims.
    page.goto(f"{server.url}/experiments/{eid}/comparison?cohorts=saline,drug")
    page.wait_for_selector("body[data-comparison-ready='1']")
    page.uncheck("#cohort-form input[value=drug]")
    page.click("#compare-button")
    page.wait_for_selector("body[data-comparison-ready='1']")
    assert "Only one cohort" in page.inner_text("#warnings")
    assert "Nothing to compare" in page.inner_text("#verdict")
    assert "cohorts=saline" in page.url
    screenshot(page, "comparison-one-cohort")
    assert not page.js_errors, page.js_errors


def test_comparison_page_warns_of_cohorts_recorded_differently(
    server: LiveServer, page: Any
) -> None:
    """Drug animals 15 % larger in the video: the page says so in words, names the syllables
    to check, and marks the condition in the recording-conditions table."""
    ids = _populate(server, name="Size study", quality=_recorded({"saline": 28.0, "drug": 32.2}))
    page.goto(f"{server.url}/experiments/{ids['experiment']}/comparison?cohorts=saline,drug")
    page.wait_for_selector("body[data-comparison-ready='1']")
    warnings = page.inner_text("#warnings")
    assert "These cohorts differ in the animals' body size in the video" in warnings
    assert "Check syllable 1 and syllable 2" in warnings
    differs = page.locator("#recording-conditions tr[data-differs='true']")
    assert differs.count() == 1 and differs.first.get_attribute("data-condition") == "body_size"
    assert page.locator("#recording-conditions tr").count() == 7  # header + 6 conditions
    assert "differed in the animals' body size" in page.inner_text("#methods")
    assert not page.js_errors, page.js_errors
    page.locator("#recording-conditions").scroll_into_view_if_needed()
    screenshot(page, "comparison-recording-conditions")


def test_experiment_page_says_which_sessions_a_fit_leaves_out(
    server: LiveServer, page: Any
) -> None:
    """A video with no mouse in most frames carries, on the experiment page, the reason it is
    left out of fits; the others carry none."""

    def quality(cohort: str, animal: int) -> dict[str, Any]:
        empty = cohort == "drug" and animal == 0
        return {"fraction_no_mouse": 0.8 if empty else 0.0, "fraction_several_blobs": 0.0}

    ids = _populate(server, name="Empty arena", quality=quality)
    page.goto(f"{server.url}/experiments/{ids['experiment']}")
    page.wait_for_selector("tr[data-session-id]")
    flagged = page.locator(".fit-problem")
    assert flagged.count() == 1
    text = flagged.first.inner_text()
    assert "Left out of fits" in text and "no mouse was found in 80% of its frames" in text
    assert not page.js_errors, page.js_errors
    flagged.first.scroll_into_view_if_needed()
    screenshot(page, "experiment-session-left-out-of-fits")
