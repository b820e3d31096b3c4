"""Readiness: can this process serve real work right now?

``/healthz`` says the process is alive and its services answer; ``/readyz`` also checks that the
database schema is at the newest migration and that the storage folder takes writes, and names
the check that fails.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.core.broker import broker_ok
from app.core.config import Settings
from app.core.migrate import alembic_config
from app.core.storage import Storage


def check_database(engine: Engine) -> tuple[bool, str]:
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        return False, f"unreachable: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    if current != heads:
        return False, (
            f"not migrated: at {sorted(current) or 'no revision'}, newest is {sorted(heads)}; "
            "run 'syllabary migrate'"
        )
    return True, "ok"


def check_storage(root: Path) -> tuple[bool, str]:
    try:
        tmp = root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix="readyz-")
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return False, f"not writable: {exc.strerror or exc} ({root})"
    return True, "ok"


def readiness(
    settings: Settings, engine: Engine, storage: Storage | None = None
) -> tuple[bool, dict[str, str]]:
    """Every check's outcome; ready only when all pass."""
    results = {
        "database": check_database(engine),
        "broker": broker_ok(settings),
        "storage": check_storage(settings.files_dir),
    }
    remote = storage.remote_check() if storage is not None else None
    if remote is not None:  # a bucket: the storage folder above is only this host's cache
        results["bucket"] = remote
    ready = all(ok for ok, _ in results.values())
    checks = {name: ("ok" if ok else reason) for name, (ok, reason) in results.items()}
    return ready, checks
