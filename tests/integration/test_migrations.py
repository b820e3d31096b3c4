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


def test_experiments_made_before_accounts_go_into_the_default_group(empty_database: str) -> None:
    """Upgrading a database with experiments loses nothing: they join the "default" lab group,
    and the first administrator created afterwards owns it."""
    from sqlalchemy import text

    from app.accounts import service
    from app.core.db import session_factory

    upgrade(empty_database, "0002")
    engine = make_engine(empty_database, null_pool=True)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO experiments (name, description, created_at, updated_at) "
                    "VALUES ('old study', '', '2026-01-01', '2026-01-01')"
                )
            )
        upgrade(empty_database)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT g.name FROM experiments e JOIN lab_groups g ON g.id = e.group_id "
                    "WHERE e.name = 'old study'"
                )
            ).one()
        assert row[0] == "default"
        with session_factory(engine)() as db:
            admin = service.create_user(
                db, username="pi", password="a long password", is_admin=True
            )
            db.commit()
            roles = {m.group.name: m.role for m in service.memberships(db, user=admin)}
        assert roles == {"pi": "owner", "default": "owner"}
    finally:
        engine.dispose()
