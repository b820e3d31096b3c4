"""Faults of the real services while real workers run jobs: PostgreSQL restarts, Redis restarts.

These restart the machine's shared PostgreSQL and Redis, wait until they answer again, and keep
short. Every job must end succeeded, or failed with a reason, and a retry must work afterwards.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import DEEPOF, FAKE_MP4, backend_env, wait_for
from tests.integration.test_pipeline import job_of

pytestmark = pytest.mark.slow

TERMINAL = ("succeeded", "failed")


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr or done.stdout}"


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0


def restart_postgres() -> None:
    cluster = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.split()
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], "restart"])
    wait_for(_pg_ready, timeout=60, interval=0.5, what="PostgreSQL to accept connections")


def restart_redis() -> None:
    """Shut Redis down and start it again with the settings it ran with."""
    import redis

    client = redis.Redis(
        host="127.0.0.1", port=6379, socket_connect_timeout=2, decode_responses=True
    )
    config: dict[str, Any] = {}
    for key in ("bind", "port", "save", "appendonly", "dir", "logfile", "pidfile"):
        config.update(client.config_get(key))
    with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
        client.shutdown(nosave=True)
    wait_for(lambda: not _redis_ready(), timeout=30, what="Redis to stop")
    args = ["redis-server", "--daemonize", "yes"]
    for key, value in config.items():
        args += [f"--{key}", *(value.split() if key == "bind" else [value])]
    _run(args)
    wait_for(_redis_ready, timeout=30, interval=0.2, what="Redis to answer")


def _redis_ready() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _answer(call: Callable[[], Any]) -> Any:
    """The web app's answer, or None while a service it needs is still coming back."""
    try:
        response = call()
    except Exception:
        return None
    return response.json() if response.status_code == 200 else None


def jobs_of(client: Any, experiment_ids: list[int]) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = []
    for eid in experiment_ids:
        sessions = _answer(lambda e=eid: client.get(f"/api/experiments/{e}/sessions"))
        if sessions is None:
            return None
        for session in sessions:
            full = _answer(lambda s=session: client.get(f"/api/sessions/{s['id']}"))
            if full is None:
                return None
            found += full["jobs"]
    return found


def all_terminal(client: Any, experiment_ids: list[int]) -> list[dict[str, Any]] | None:
    jobs = jobs_of(client, experiment_ids)
    if not jobs or any(j["status"] not in TERMINAL for j in jobs):
        return None
    # Ingest follows a successful probe: wait for it to exist before calling the run finished.
    kinds = [j["kind"] for j in jobs]
    if kinds.count("probe") - sum(1 for j in jobs if j["kind"] == "probe" and j["error"]) > (
        kinds.count("ingest")
    ):
        return None
    return jobs


def run_through_a_restart(
    env: dict[str, str], make_app: Any, workers: Any, restart: Callable[[], None]
) -> None:
    client = make_app(env)
    workers.start(env)
    experiments = [
        client.post("/api/experiments", json={"name": f"Fault {i}"}).json()["id"] for i in (1, 2)
    ]
    sessions = []
    for eid in experiments:
        with DEEPOF.open("rb") as fh:
            answer = client.post(f"/api/experiments/{eid}/sessions", files={"file": ("a.mp4", fh)})
        assert answer.status_code == 201, answer.text
        sessions.append(answer.json())
    bad = client.post(
        f"/api/experiments/{experiments[0]}/sessions", files={"file": ("bad.mp4", FAKE_MP4)}
    ).json()

    # Poll the jobs table directly (cheaper than the API) so a short job is caught mid-run.
    engine = client.app.state.engine

    def running() -> bool:
        with engine.connect() as conn:
            return bool(conn.scalar(text("SELECT count(*) FROM jobs WHERE status = 'running'")))

    wait_for(running, timeout=60, interval=0.01, what="a job to be running")
    restart()
    jobs = wait_for(
        lambda: all_terminal(client, experiments), timeout=240, interval=1, what="every job to end"
    )
    for job in jobs:
        assert job["status"] == "succeeded" or job["error"], job  # failed always says why
    probes = [j for j in jobs if j["kind"] == "probe" and j["session_id"] != bad["id"]]
    assert [j["status"] for j in probes] == ["succeeded", "succeeded"], (jobs, workers.logs())
    assert len([j for j in jobs if j["kind"] == "ingest"]) == 2  # chained exactly once each

    # Retry works after the restart: the unreadable file's job runs (and fails) again.
    failed = job_of(client, bad)
    assert failed["status"] == "failed" and "cannot be read" in failed["error"]
    assert client.post(f"/api/jobs/{failed['id']}/retry").status_code == 200
    again = wait_for(
        lambda: (j := job_of(client, bad))["status"] == "failed" and j["attempts"] == 2 and j,
        timeout=60,
        what="the retried job",
    )
    assert "cannot be read" in again["error"]
    assert all(p.poll() is None for p in workers.procs), "a worker died during the restart"


def test_postgres_restart_while_jobs_run(
    postgres_url, redis_url, make_app, workers, shared_data, tmp_path
) -> None:
    env = backend_env(tmp_path, database_url=postgres_url, broker_url=redis_url)
    started = time.monotonic()
    run_through_a_restart(env, make_app, workers, restart_postgres)
    assert time.monotonic() - started < 300


def test_redis_restart_while_jobs_run(
    postgres_url, redis_url, make_app, workers, shared_data, tmp_path
) -> None:
    # Redis here keeps nothing across a restart: queued wake-ups are lost, so the reaper must
    # resend them from the jobs table (quickly, for the test).
    env = backend_env(
        tmp_path, database_url=postgres_url, broker_url=redis_url, job_resend_after_seconds=5
    )
    run_through_a_restart(env, make_app, workers, restart_redis)
