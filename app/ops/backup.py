"""Backup and restore: the database and the storage folder, with a manifest of checksums.

A backup is a folder::

    manifest.json        format, creation time, database kind and revision, sha256 of everything
    database.sqlite3     SQLite: a consistent copy made with SQLite's online backup API
    database.pgdump      PostgreSQL: ``pg_dump --format=custom``
    files/...            every file of the storage folder (originals, derived files, partial
                         resumable uploads), same relative paths, original permissions

The manifest is written last, so a backup interrupted half-way has none and never verifies.
Restoring checks the whole backup first and refuses to overwrite a database or storage folder
that holds anything unless asked to (``force``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.db import utcnow

FORMAT = 1
MANIFEST = "manifest.json"
FILES = "files"
SQLITE_DUMP = "database.sqlite3"
PG_DUMP = "database.pgdump"
# Tables a Syllabary database always has; a dump without them is not one of ours.
REQUIRED_TABLES = ("alembic_version", "experiments", "sessions", "jobs")
# Scratch space of the storage folder: never part of a backup.
SKIPPED_DIRS = ("tmp",)
_BLOCK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup cannot be made, verified or restored; the message says why and what to do."""


def create(dest: Path, *, settings: Settings) -> dict[str, Any]:
    """Write a backup of the database and storage folder into ``dest`` (new or empty)."""
    _refuse_bucket(settings)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; choose a new folder for the backup.")
    dest.mkdir(parents=True, exist_ok=True)
    url = settings.sqlalchemy_url
    kind = _kind(url)
    dump = dest / (SQLITE_DUMP if kind == "sqlite" else PG_DUMP)
    if kind == "sqlite":
        _sqlite_copy(_sqlite_path(url), dump)
    else:
        dsn, env = _libpq(url)
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", dsn], env=env)
    files: dict[str, dict[str, Any]] = {}
    root = settings.files_dir
    for rel in _walk(root):
        files[rel] = _copy(root / rel, dest / FILES / rel)
    manifest = {
        "format": FORMAT,
        "created_at": utcnow().isoformat() + "Z",
        "database": {
            "kind": kind,
            "file": dump.name,
            "revision": _revision(url),
            **_digest_of(dump),
        },
        "files": files,
    }
    _write_json(dest / MANIFEST, manifest)
    return manifest


def verify(dest: Path) -> list[str]:
    """Re-hash every file and open the database dump; returns the problems (empty: sound)."""
    try:
        manifest = _read_manifest(dest)
    except BackupError as exc:
        return [str(exc)]
    problems: list[str] = []
    database = manifest.get("database", {})
    if database.get("file") not in (SQLITE_DUMP, PG_DUMP):
        return [f"manifest: unexpected database file {database.get('file')!r}"]
    dump = dest / str(database["file"])
    problems += _check_file(dump, database, dump.name)
    if not problems:
        problems += _check_dump(dump, str(database.get("kind")))
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    for rel, entry in sorted(listed.items()):
        if not _is_plain_relative(rel):
            problems.append(f"manifest: file path {rel!r} leaves the storage folder (refused)")
            continue
        problems += _check_file(dest / FILES / rel, entry, f"{FILES}/{rel}")
    for rel in _walk(dest / FILES):
        if rel not in listed:
            problems.append(f"{FILES}/{rel}: not in the manifest (added after the backup?)")
    return problems


def _refuse_bucket(settings: Settings) -> None:
    """With a bucket the storage folder is only a cache: a backup of it would miss originals."""
    if settings.storage == "s3":
        raise BackupError(
            f"The files are in the bucket {settings.s3_bucket} (SYLLABARY_STORAGE=s3), not in "
            "a storage folder: back the bucket up with its own tools (versioning, replication "
            "or 'mc mirror') and the database with pg_dump; see docs/operations.md."
        )


def restore(dest: Path, *, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Put a verified backup back: database and storage folder of ``settings``.

    Refuses when the target database has tables or the storage folder has files, unless
    ``force`` (then the storage folder is emptied first and the dump replaces the database's
    tables). Stop the web app and workers first."""
    _refuse_bucket(settings)
    problems = verify(dest)
    if problems:
        raise BackupError(
            f"{dest} does not verify, so nothing was restored:\n  " + "\n  ".join(problems)
        )
    manifest = _read_manifest(dest)
    url = settings.sqlalchemy_url
    kind = _kind(url)
    if manifest["database"]["kind"] != kind:
        raise BackupError(
            f"{dest} holds a {manifest['database']['kind']} database but the target "
            f"(SYLLABARY_DATABASE_URL) is {kind}; restore into the same kind of database."
        )
    root = settings.files_dir
    occupied = _describe_target(url, root)
    if occupied and not force:
        raise BackupError(
            f"The target is not empty ({'; '.join(occupied)}); restoring would overwrite it. "
            "Point SYLLABARY_DATABASE_URL / SYLLABARY_STORAGE_DIR at a fresh location, or "
            "pass --force to replace what is there."
        )
    dump = dest / manifest["database"]["file"]
    if kind == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".restoring")
        tmp.unlink(missing_ok=True)
        _sqlite_copy(dump, tmp)
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        os.replace(tmp, target)
    else:
        args = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction"]
        if force:
            args += ["--clean", "--if-exists"]
        dsn, env = _libpq(url)
        _run([*args, f"--dbname={dsn}", str(dump)], env=env)
    if force and root.exists():
        for child in root.iterdir():
            _remove(child)
    for rel, entry in manifest["files"].items():
        _copy(dest / FILES / rel, root / rel, mode=entry.get("mode"))
    return manifest


# ---------------------------------------------------------------------------------------------


def _kind(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise BackupError(f"backups support SQLite and PostgreSQL, not {url.split(':', 1)[0]}")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("the SQLite database is in memory; there is nothing to back up")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump/pg_restore understand it (no SQLAlchemy driver suffix), and the
    environment that carries the password (never on the command line, where ``ps`` shows it)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent single-file copy, safe while others write (SQLite's online backup API)."""
    if not source.exists():
        raise BackupError(f"the SQLite database {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        dst.commit()
    finally:
        dst.close()
        src.close()


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{args[0]} is not installed; install the PostgreSQL client tools "
            "(apt install postgresql-client) matching the server's version"
        ) from exc
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _walk(root: Path) -> Iterator[str]:
    """Relative POSIX paths of the regular files under ``root``, sorted, without scratch."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIPPED_DIRS or path.is_symlink() or not path.is_file():
            continue
        yield rel.as_posix()


def _copy(source: Path, target: Path, *, mode: int | None = None) -> dict[str, Any]:
    """Copy one file (atomically at the target) while hashing what was copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".restore-")
    try:
        with source.open("rb") as src, os.fdopen(fd, "wb") as out:
            while block := src.read(_BLOCK):
                digest.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        final_mode = mode if mode is not None else source.stat().st_mode & 0o777
        os.chmod(tmp, final_mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"size": size, "sha256": digest.hexdigest(), "mode": final_mode}


def _is_plain_relative(rel: str) -> bool:
    """A path that stays inside the folder it is joined to (no ``..``, not absolute)."""
    path = Path(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts and "\\" not in rel


def _digest_of(path: Path) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def _check_file(path: Path, entry: dict[str, Any], label: str) -> list[str]:
    if not path.is_file():
        return [f"{label}: missing"]
    found = _digest_of(path)
    if found["size"] != entry.get("size"):
        return [f"{label}: {found['size']} bytes, the manifest says {entry.get('size')}"]
    if found["sha256"] != entry.get("sha256"):
        return [f"{label}: sha256 differs from the manifest (the file is corrupted)"]
    return []


def _check_dump(dump: Path, kind: str) -> list[str]:
    """Open the dump and list its tables."""
    if kind == "sqlite":
        try:
            conn = sqlite3.connect(f"file:{dump}?mode=ro&immutable=1", uri=True)
            try:
                check = conn.execute("PRAGMA integrity_check").fetchone()
                rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return [f"{dump.name}: cannot be opened as SQLite ({exc})"]
        if not check or check[0] != "ok":
            return [f"{dump.name}: SQLite integrity check failed ({check})"]
        tables = {name for (name,) in rows}
    elif kind == "postgresql":
        try:
            listing = _run(["pg_restore", "--list", str(dump)])
        except BackupError as exc:
            return [f"{dump.name}: not a readable pg_dump archive ({exc})"]
        tables = {
            line.split()[-2]
            for line in listing.splitlines()
            if " TABLE " in line and not line.startswith(";") and " TABLE DATA " not in line
        }
    else:
        return [f"manifest: unknown database kind {kind!r}"]
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        return [f"{dump.name}: has no table {', '.join(missing)} (not a Syllabary database)"]
    return []


def _read_manifest(dest: Path) -> dict[str, Any]:
    path = dest / MANIFEST
    if not path.is_file():
        raise BackupError(f"{path} is missing: not a backup, or one that did not finish")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _describe_target(url: str, root: Path) -> list[str]:
    """What the restore target already holds, in words (empty list: nothing)."""
    occupied = []
    if not url.startswith("sqlite") or _sqlite_path(url).exists():
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                tables = inspect(conn).get_table_names()
        finally:
            engine.dispose()
        if tables:
            occupied.append(f"the database has {len(tables)} tables")
    count = sum(1 for _ in _walk(root))
    if count:
        occupied.append(f"the storage folder {root} has {count} files")
    return occupied


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
