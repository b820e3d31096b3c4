"""The FastAPI application: ``create_app()`` wires settings, database, storage and routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.accounts.deps import API_ACCESS, PAGE_ACCESS
from app.accounts.web import install as install_accounts
from app.annotations import routes as annotation_routes
from app.comparison import routes as comparison_routes
from app.core.broker import broker_ok, job_sender
from app.core.config import Settings, get_settings
from app.core.db import engine_for, session_factory
from app.core.errors import (
    BadInput,
    Conflict,
    InsufficientStorage,
    NotFound,
    StoredFileCorrupt,
    TooLarge,
)
from app.core.metrics import registry_for
from app.core.observability import RequestContextMiddleware
from app.core.storage import storage_for
from app.experiments import pages as experiment_pages
from app.experiments import routes as experiment_routes
from app.exports import routes as export_routes
from app.jobs import routes as job_routes
from app.jobs.service import install_session_hooks, set_sender
from app.ops import routes as ops_routes
from app.syllables import routes as syllable_routes
from app.uploads import routes as upload_routes

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Syllabary",
        version="0.1.0",
        description="Turn top-down mouse videos into behavioural syllables.",
    )
    engine = engine_for(settings.sqlalchemy_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    install_session_hooks(Session)
    set_sender(job_sender(settings))
    app.state.storage = storage_for(settings)
    app.state.templates = Jinja2Templates(directory=str(ROOT / "templates"))

    _install_error_handlers(app)
    # Operations: request ids, JSON request logs and metrics; /readyz and /metrics.
    app.state.metrics = registry_for(engine)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(ops_routes.router)
    # Every API route and page checks the login and the user's role in the data's lab group.
    app.include_router(experiment_routes.router, dependencies=API_ACCESS)
    app.include_router(job_routes.router, dependencies=API_ACCESS)
    app.include_router(upload_routes.router, dependencies=API_ACCESS)
    app.include_router(syllable_routes.router, dependencies=API_ACCESS)
    app.include_router(export_routes.router, dependencies=API_ACCESS)
    app.include_router(annotation_routes.router, dependencies=API_ACCESS)
    app.include_router(experiment_pages.router, dependencies=PAGE_ACCESS)
    app.include_router(comparison_routes.router)  # API and page, each guarded inside
    install_accounts(app)
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """200 when the database and the broker answer, 503 otherwise."""
        checks: dict[str, str] = {}
        healthy = True
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            healthy = False
            checks["database"] = f"unreachable: {exc.__class__.__name__}"
        ok, reason = broker_ok(settings)
        checks["broker"] = reason
        healthy = healthy and ok
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "checks": checks},
            status_code=200 if healthy else 503,
        )

    _document_plain_errors(app)
    return app


def _document_plain_errors(app: FastAPI) -> None:
    """Our own 422s (bad input found by a service) carry a sentence in ``detail``, FastAPI's a
    list of field errors: say in the OpenAPI document that both happen."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        props = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError", {})
        detail = props.get("properties", {}).get("detail")
        if detail is not None and "anyOf" not in detail:
            props["properties"]["detail"] = {
                "anyOf": [detail, {"type": "string"}],
                "title": "Detail",
            }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    def handler(code: int):  # type: ignore[no-untyped-def]
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handle

    app.add_exception_handler(NotFound, handler(404))
    app.add_exception_handler(BadInput, handler(422))
    app.add_exception_handler(Conflict, handler(409))
    app.add_exception_handler(TooLarge, handler(413))
    app.add_exception_handler(InsufficientStorage, handler(507))
    app.add_exception_handler(StoredFileCorrupt, handler(500))
