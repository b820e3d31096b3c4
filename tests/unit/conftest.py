"""Fixtures of the unit tests that use a database: a real SQLite file, migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    """A session on a fresh SQLite database made by the migrations."""
    from app.core.db import make_engine, session_factory
    from app.core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'unit.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()
