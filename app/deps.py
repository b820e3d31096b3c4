"""Typed dependencies shared by routes: ``DbSession``, ``SettingsDep``, ``StorageDep``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.storage import Storage


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One database session per request.

    An async generator on purpose: FastAPI runs the cleanup of a sync generator dependency in
    the thread pool, so under load (every thread busy waiting for a pooled connection) the
    sessions that hold the connections could never close, and requests timed out with 500s.
    Closing here, on the event loop, returns the connection at once. Creating a session opens
    no connection; the route uses it in its own thread.
    """
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_storage_dep(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


DbSession = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StorageDep = Annotated[Storage, Depends(get_storage_dep)]
