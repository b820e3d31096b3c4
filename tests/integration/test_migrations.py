"""Alembic is the only path for schema changes: one history for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core.db import make_engine
from app.core.migrate import alembic_config, upgrade
from app.models import Base

EXPECTED_TABLES = {"experiments", "cohorts", "subjects", "sessions", "jobs", "alembic_version"}


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_migrations_apply_and_match_the_models(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database, null_pool=True)
    try:
        assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "render_as_batch": empty_database.startswith("sqlite")},
            )
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"ORM models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(empty_database: str) -> None:
    upgrade(empty_database)
    config = alembic_config(empty_database)
    command.downgrade(config, "base")
    engine = make_engine(empty_database, null_pool=True)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_database)


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
