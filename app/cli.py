"""The ``syllabary`` command: serve, worker, migrate, reap (and the engine's commands)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from app.accounts.cli import ensure_first_admin
from app.accounts.cli import user as user_commands
from app.core.config import get_settings


@click.group()
def main() -> None:
    """Syllabary: turn top-down mouse videos into behavioural syllables."""
    from app.core.logs import configure_logging

    configure_logging()  # JSON lines (request id / job id on each), see docs/operations.md


@main.command()
def migrate() -> None:
    """Apply database migrations (creates the embedded SQLite database if needed)."""
    from app.core.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    click.echo(f"database is up to date ({_redact(settings.sqlalchemy_url)})")


@main.command()
@click.option("--queues", default=None, help="comma-separated queues (default: the CPU queue)")
@click.option("--loglevel", default="INFO")
def worker(queues: str | None, loglevel: str) -> None:
    """Run one Celery worker that executes jobs one at a time."""
    from worker.threads import limit_threads, worker_threads

    settings = get_settings()
    threads = worker_threads(settings)
    limit_threads(threads)  # before the handlers import numpy and the engine
    click.echo(f"worker: {threads} CPU thread(s) for numerical work (SYLLABARY_WORKER_THREADS)")
    from worker.celery_app import celery_app

    if settings.worker_nice:
        os.nice(settings.worker_nice)
    celery_app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            f"--queues={queues or settings.cpu_queue}",
            f"--loglevel={loglevel}",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            f"--hostname=syllabary-{os.getpid()}@%h",
        ]
    )


@main.command()
def check() -> None:
    """Exit 0 when the database and the broker answer (for container healthchecks)."""
    from sqlalchemy import text

    from app.core.broker import broker_ok
    from app.core.db import get_engine

    settings = get_settings()
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    ok, reason = broker_ok(settings)
    if not ok:
        raise click.ClickException(reason)
    click.echo("database ok, broker ok")


@main.command()
def reap() -> None:
    """Re-queue jobs whose worker died (expired lease) and resend lost wake-ups, once."""
    from worker.celery_app import reap_once

    click.echo(reap_once())


@main.command()
@click.option("--host", default=None, help="interface to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8000 or SYLLABARY_PORT)")
@click.option("--no-worker", is_flag=True, help="do not start a worker alongside the web app")
def serve(host: str | None, port: int | None, no_worker: bool) -> None:
    """Apply migrations, then run the web app and one worker until Ctrl-C."""
    import uvicorn

    from app.core.migrate import upgrade

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    upgrade(settings.sqlalchemy_url)
    ensure_first_admin()
    worker_proc: subprocess.Popen[bytes] | None = None
    if not no_worker:
        worker_proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
    click.echo(f"Syllabary is running at http://{host}:{port}  (Ctrl-C stops it)")
    try:
        # Uvicorn logs through our JSON handler; the app logs one line per request itself.
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            log_config=None,
            access_log=False,
        )
    finally:
        if worker_proc is not None:
            _stop(worker_proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
    proc.wait()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _register_engine_commands() -> None:
    # The engine's commands (fit, segment, synth) live beside the engine in model/.
    try:
        from model.cli import COMMANDS
    except ImportError:
        return
    for command in COMMANDS:
        main.add_command(command)


_register_engine_commands()
main.add_command(user_commands)


def _register_ops_commands() -> None:
    from app.ops.cli import backup

    main.add_command(backup)


_register_ops_commands()

if __name__ == "__main__":
    main()
