"""Database engine and sessions: SQLite (embedded) or PostgreSQL, one code path.

SQLite connections get WAL, a busy timeout and foreign keys on every connection, so the web app
and a worker process can write to the same file without "database is locked" errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Naive UTC now: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, *, null_pool: bool = False) -> Engine:
    """An engine for ``url``; ``null_pool`` for one-off tools (migrations) that hold nothing."""
    pooling: dict[str, Any] = {"poolclass": NullPool} if null_pool else {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if not null_pool and path and path != ":memory:":
            # SQLite connections are cheap file handles: never make a request wait for one
            # (a bounded pool turned 100 concurrent clients into pool timeouts).
            pooling = {"pool_size": 10, "max_overflow": -1}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pooling
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if not null_pool:
        pooling = {"pool_size": 10, "max_overflow": 20}
    return create_engine(url, pool_pre_ping=True, **pooling)


@lru_cache
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    from app.core.config import get_settings

    return engine_for(get_settings().sqlalchemy_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (for tasks and the CLI)."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
