"""Shared fixtures: real services (PostgreSQL, Redis), embedded settings, worker subprocesses.

Locally a test that needs PostgreSQL or Redis is skipped when the service is not running; in CI
(``CI=true``) it fails instead, so CI can never pass without exercising the real services.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
TRACKTOR = SHARED_DATA / "tracktor-mouse" / "mouse_video.mp4"
DEEPOF = SHARED_DATA / "deepof-overlay" / "testDLC_video_circular_arena.mp4"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The first bytes of an MP4 (an ``ftyp`` box) and nothing else: passes the upload's container
# check, and the probe job then fails it as unreadable. For tests that need any stored file.
FAKE_MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"

POSTGRES_URL = os.environ.get(
    "SYLLABARY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SYLLABARY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); start it (see README) to run this test"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not TRACKTOR.exists():
        pytest.fail(f"shared test videos not found at {SHARED_DATA}; clone beside ../shared")
    return SHARED_DATA


def _pg_admin_url() -> str:
    return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # No pooled connection: the fault tests restart PostgreSQL in between.
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"syllabary_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        service_missing("PostgreSQL", exc)
    base, _, _db = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        from app.core.db import engine_for

        engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        service_missing("Redis", exc)
    return REDIS_URL


def backend_env(
    tmp_path: Path, database_url: str = "", broker_url: str = "", **extra: Any
) -> dict[str, str]:
    """Environment variables for an isolated Syllabary (own var dir and queue names)."""
    queue = f"cpu-{uuid.uuid4().hex[:8]}"
    env = {
        "SYLLABARY_ENVIRONMENT": "test",
        "SYLLABARY_VAR_DIR": str(tmp_path / "var"),
        "SYLLABARY_DATABASE_URL": database_url,
        "SYLLABARY_BROKER_URL": broker_url,
        "SYLLABARY_CPU_QUEUE": queue,
        "SYLLABARY_JOB_LEASE_SECONDS": "3",
        "SYLLABARY_REAPER_INTERVAL_SECONDS": "1",
    }
    env.update({f"SYLLABARY_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Both backend pairs: SQLite + filesystem broker, PostgreSQL + Redis."""
    if request.param == "sqlite":
        return backend_env(tmp_path)
    pg = request.getfixturevalue("postgres_url")
    rd = request.getfixturevalue("redis_url")
    return backend_env(tmp_path, database_url=pg, broker_url=rd)


TEST_PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def add_user(
    app: Any,
    username: str,
    *,
    admin: bool = False,
    group: str | None = None,
    role: str = "owner",
    password: str = TEST_PASSWORD,
) -> int:
    """Create a user in the app's database (own lab group unless ``group``); returns its id."""
    from app.accounts import service

    with app.state.session_factory() as db:
        user = service.create_user(
            db, username=username, password=password, is_admin=admin, group_name=group, role=role
        )
        db.commit()
        return int(user.id)


def log_in(client: Any, username: str, password: str = TEST_PASSWORD) -> Any:
    """Log ``client`` in through the login form; it then sends the CSRF header like the JS."""
    response = client.post(
        "/login", data={"username": username, "password": password}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    match = CSRF_META.search(client.get("/account").text)
    assert match and match.group(1), "the account page carries no CSRF token"
    client.headers["X-CSRF-Token"] = match.group(1)
    return client


def new_client(app: Any) -> Any:
    """Another browser: a TestClient of the same app with its own cookies."""
    from fastapi.testclient import TestClient

    return TestClient(app)


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Build the app in-process for an environment (migrated), returning a TestClient logged
    in as the administrator "alice" (owner of her own lab group); ``user=None``: anonymous."""
    from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def build(env: dict[str, str], *, user: str | None = "alice") -> TestClient:
        from app.core.config import Settings, get_settings
        from app.core.migrate import upgrade
        from app.main import create_app

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        settings = Settings()
        upgrade(settings.sqlalchemy_url)
        client = TestClient(create_app(settings))
        clients.append(client)
        if user is not None:
            from app.accounts import service as accounts

            with client.app.state.session_factory() as db:
                exists = accounts.get_user(db, username=user) is not None
            if not exists:  # a restored backup already holds its users
                add_user(client.app, user, admin=True)
            log_in(client, user)
        return client

    yield build
    for client in clients:
        client.close()
    from app.core.config import get_settings
    from app.core.db import engine_for

    get_settings.cache_clear()
    engine_for.cache_clear()


class Workers:
    """Starts real ``syllabary worker`` subprocesses and stops them at the end of a test."""

    def __init__(self, tmp_path: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp_path = tmp_path

    def start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel=INFO"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.stop_all()


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


def job_done(
    client: Any, job_id: int, *, timeout: float, interval: float = 0.2, what: str = ""
) -> dict[str, Any]:
    """Wait until a job has succeeded or failed; the job as the API shows it."""

    def done() -> dict[str, Any] | None:
        job = dict(client.get(f"/api/jobs/{job_id}").json())
        return job if job["status"] in ("succeeded", "failed") else None

    return dict(wait_for(done, timeout=timeout, interval=interval, what=what or f"job {job_id}"))


def job_running(client: Any, job_id: int, *, timeout: float = 60) -> dict[str, Any]:
    """Wait until a job runs and has reported progress (a worker is inside it)."""

    def running() -> dict[str, Any] | None:
        job = dict(client.get(f"/api/jobs/{job_id}").json())
        return job if job["status"] == "running" and job["progress"] > 0 else None

    return dict(wait_for(running, timeout=timeout, interval=0.05, what=f"job {job_id} to run"))
