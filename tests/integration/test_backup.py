"""Backup and restore through the CLI, on SQLite and PostgreSQL: create, verify, a corrupted copy
fails verification naming the file, restore into a fresh location gives identical data and files,
and a restore never overwrites a non-empty target unless forced."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from app.cli import main
from tests.conftest import DEEPOF, FAKE_MP4, POSTGRES_URL, _pg_admin_url, backend_env


@pytest.fixture
def spare_postgres_url() -> Iterator[str]:
    """A second empty PostgreSQL database (the restore target), dropped afterwards."""
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"syllabary_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> Any:
    from app.core.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a comparable form."""
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: [tuple(row) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
                for table in sorted(inspect(conn).get_table_names())
            }
    finally:
        engine.dispose()


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "tmp"
    }


def test_backup_verify_corrupt_restore(
    backend, make_app, monkeypatch, tmp_path, shared_data, request
) -> None:
    from app.core.config import Settings

    client = make_app(backend)
    eid = client.post("/api/experiments", json={"name": "Backed up"}).json()["id"]
    with DEEPOF.open("rb") as fh:
        ok = client.post(
            f"/api/experiments/{eid}/sessions",
            files={"file": (DEEPOF.name, fh)},
            data={"subject": "m1", "cohort": "saline"},
        )
    assert ok.status_code == 201
    assert (
        client.post(
            f"/api/experiments/{eid}/sessions", files={"file": ("b.mp4", FAKE_MP4)}
        ).status_code
        == 201
    )
    source = Settings()
    derived = source.files_dir / "sessions" / "1" / "features.npz"
    derived.parent.mkdir(parents=True)
    derived.write_bytes(b"derived results" * 100)

    backup = tmp_path / "backup"
    made = cli(monkeypatch, backend, "backup", "create", str(backup))
    assert made.exit_code == 0, made.output
    assert "3 files" in made.output
    checked = cli(monkeypatch, backend, "backup", "verify", str(backup))
    assert checked.exit_code == 0 and "verified" in checked.output, checked.output
    again = cli(monkeypatch, backend, "backup", "create", str(backup))
    assert again.exit_code != 0 and "not empty" in again.output

    # A flipped byte in one original, and a missing derived file: both named.
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    original = next((damaged / "files" / "originals").rglob("*.mp4"))
    original.chmod(0o644)
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    original.write_bytes(bytes(data))
    (damaged / "files" / "sessions" / "1" / "features.npz").unlink()
    bad = cli(monkeypatch, backend, "backup", "verify", str(damaged))
    assert bad.exit_code != 0
    rel = original.relative_to(damaged).as_posix()
    assert f"{rel}: sha256 differs" in bad.output, bad.output
    assert "files/sessions/1/features.npz: missing" in bad.output
    refused = cli(monkeypatch, backend, "backup", "restore", str(damaged))
    assert refused.exit_code != 0 and "does not verify" in refused.output

    # A forged manifest cannot make a restore write outside the storage folder.
    forged = tmp_path / "forged"
    shutil.copytree(backup, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["files"]["../../escape.txt"] = {"size": 1, "sha256": "0" * 64, "mode": 0o644}
    (forged / "manifest.json").write_text(json.dumps(manifest))
    escape = cli(monkeypatch, backend, "backup", "verify", str(forged))
    assert escape.exit_code != 0 and "leaves the storage folder" in escape.output

    # Restore into a fresh location.
    fresh_db = (
        "" if "sqlite" in source.sqlalchemy_url else request.getfixturevalue("spare_postgres_url")
    )
    target = backend_env(tmp_path / "restored", database_url=fresh_db)
    target["SYLLABARY_BROKER_URL"] = backend["SYLLABARY_BROKER_URL"]
    done = cli(monkeypatch, target, "backup", "restore", str(backup))
    assert done.exit_code == 0, done.output
    restored = Settings()
    assert restored.files_dir != source.files_dir
    assert snapshot(restored.sqlalchemy_url) == snapshot(source.sqlalchemy_url)
    assert hashes(restored.files_dir) == hashes(source.files_dir)
    stored = next((restored.files_dir / "originals").rglob("*.mp4"))
    assert stored.stat().st_mode & 0o222 == 0  # originals stay read-only

    # The target now holds data: a second restore refuses unless forced.
    (restored.files_dir / "stray.txt").write_text("added after the restore")
    twice = cli(monkeypatch, target, "backup", "restore", str(backup))
    assert twice.exit_code != 0 and "--force" in twice.output and "not empty" in twice.output
    forced = cli(monkeypatch, target, "backup", "restore", "--force", str(backup))
    assert forced.exit_code == 0, forced.output
    assert hashes(restored.files_dir) == hashes(source.files_dir)
    assert snapshot(restored.sqlalchemy_url) == snapshot(source.sqlalchemy_url)

    # The restored installation serves the data.
    restored_client = make_app(target)
    sessions = restored_client.get(f"/api/experiments/{eid}/sessions").json()
    assert {s["original_filename"] for s in sessions} == {DEEPOF.name, "b.mp4"}
