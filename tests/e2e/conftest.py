"""Browser-test fixtures: a real Syllabary (uvicorn + a worker subprocess, embedded SQLite and
filesystem broker in a temporary var dir) and Debian's Chromium driven by Playwright.

Playwright's own browser download is never used: the tests launch ``/usr/bin/chromium``
(``make test`` installs it). Without Chromium the tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI, REPO, Workers, backend_env

CHROMIUM = os.environ.get("SYLLABARY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-output" / "screenshots"
LOGS = REPO / "test-output" / "logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``uvicorn app.main:create_app`` in a subprocess on a free port, plus one worker."""

    def __init__(self, var: Path, *, with_worker: bool = True) -> None:
        self.var = var
        self.env = backend_env(var)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = Workers(var)
        self.with_worker = with_worker
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = var / "server.log"
        self.username = "e2e-admin"
        self.password = "e2e password, long enough"
        self.token = ""  # an API token of the administrator, for the tests' own API calls

    def start(self) -> LiveServer:
        env = {**os.environ, **self.env}
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        # The lab's first administrator, made the documented way (the CLI).
        password_file = self.var / "admin-password"
        password_file.write_text(self.password)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "user", "create", self.username, "--admin",
             "--password-file", str(password_file)],
            cwd=REPO, env=env, check=True, capture_output=True,
        )  # fmt: skip
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            ],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if self.with_worker:
            self.workers.start(self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    self.token = self._create_token()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer in 60 s:\n{self.logs()}")

    def _create_token(self) -> str:
        """Log in like a browser, then create an API token (with the login's CSRF token)."""
        with httpx.Client(base_url=self.url, timeout=30, follow_redirects=True) as client:
            r = client.post("/login", data={"username": self.username, "password": self.password})
            assert r.status_code == 200, r.text  # redirected to the home page
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text)
            assert csrf, "the home page carries no CSRF token"
            r = client.post(
                "/api/tokens", json={"name": "e2e"}, headers={"X-CSRF-Token": csrf.group(1)}
            )
            assert r.status_code == 201, r.text
            return str(r.json()["token"])

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authenticate a script's request."""
        return {"Authorization": f"Bearer {self.token}"}

    def log_in(self, page: Any) -> None:
        """Log a browser page in through the login form."""
        page.goto(f"{self.url}/login")
        page.fill("#username", self.username)
        page.fill("#password", self.password)
        page.click("#login-submit")
        page.wait_for_url(f"{self.url}/")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response = httpx.request(method, f"{self.url}{path}", timeout=30, headers=headers, **kwargs)
        assert response.status_code < 400, (path, response.status_code, response.text)
        return response.json()

    def logs(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- server ---\n{text[-20000:]}\n--- workers ---\n{self.workers.logs()[-50000:]}"

    def stop(self) -> None:
        self.workers.stop_all()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("e2e")).start()
    try:
        yield server
    finally:
        server.stop()
        # The server's and the worker's logs, for a person reading a failure.
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / "e2e-server-and-worker.log").write_text(server.logs())


def chromium_missing(reason: str) -> None:
    message = f"Chromium is needed for the browser tests ({reason}); `make test` installs it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        chromium_missing(f"{CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # pragma: no cover - depends on the machine
            chromium_missing(f"it did not start: {exc}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page that records console errors (tests assert there are none), logged
    in to the test's server (the ``live_server`` or ``server`` fixture) when it has one."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console error: {msg.text}")

    page.on("console", on_console)
    page.js_errors = errors  # type: ignore[attr-defined]
    for name in ("live_server", "server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).log_in(page)
    yield page
    context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
