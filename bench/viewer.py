"""Session viewer for a segmented one-hour session (108,000 frames): size and time to ready.

    python bench/viewer.py [--repeat 5]

A real server on the embedded backend, a session written through the ORM, Debian's Chromium
driven by Playwright. "Ready" is navigation start to the ethogram drawn with its data
(``#ethogram[data-ready=true]``). Baseline, in the same browser: the home page to its load
event. Bars (issue 4): HTML + data under 1 MB; ready in under 1 s on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer  # noqa: E402
from tests.integration.test_comparison import populate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from app.core.config import Settings
    from app.core.db import engine_for, session_factory

    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), with_worker=False).start()
        try:
            settings = Settings(var_dir=Path(server.env["SYLLABARY_VAR_DIR"]))
            engine = engine_for(settings.sqlalchemy_url)
            ids = populate(
                session_factory(engine),
                settings.files_dir,
                design=(("saline", 1, 1),),
                frames=108_000,
            )
            engine.dispose()
            sid = ids["sessions"][0]
            html = httpx.get(f"{server.url}/sessions/{sid}", headers=server.auth).content
            response = httpx.get(f"{server.url}/api/sessions/{sid}/viewer", headers=server.auth)
            data = response.content
            bouts = len(response.json()["bouts"]["start"])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                server.log_in(page)
                t0 = time.perf_counter()
                page.goto(f"{server.url}/sessions/{sid}")  # cold: plotly.js not yet cached
                page.wait_for_selector("#ethogram[data-ready=true]", timeout=60_000)
                cold = time.perf_counter() - t0
                ready, home = [], []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    page.goto(f"{server.url}/sessions/{sid}")
                    page.wait_for_selector("#ethogram[data-ready=true]", timeout=60_000)
                    ready.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    page.goto(f"{server.url}/", wait_until="load")
                    home.append(time.perf_counter() - t0)
                browser.close()
        finally:
            server.stop()
    r, h = statistics.median(ready), statistics.median(home)
    print(f"one-hour session: 108000 frames, {bouts} bouts")
    print(
        f"  HTML {len(html) / 1024:.0f} KiB + data {len(data) / 1024:.0f} KiB = "
        f"{(len(html) + len(data)) / 1024:.0f} KiB   (bar: < 1024 KiB)"
    )
    print(
        f"  viewer ready: median {1000 * r:.0f} ms over {args.repeat} loads "
        f"(min {1000 * min(ready):.0f}, max {1000 * max(ready):.0f})   (bar: < 1000 ms)"
    )
    print(f"  first load, nothing cached: {1000 * cold:.0f} ms")
    print(f"  baseline, home page load: median {1000 * h:.0f} ms")
    print(f"  ratio viewer / home: {r / h:.1f}")


if __name__ == "__main__":
    main()
