"""Operations endpoints: ``/readyz`` and ``/metrics`` (``/healthz`` lives in ``app.main``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.ops.readiness import readiness

router = APIRouter(tags=["operations"])


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 when the database is reachable and migrated, the broker answers, storage takes
    writes and the bucket (if one is used) answers; 503 naming the failing check otherwise."""
    state = request.app.state
    ready, checks = readiness(state.settings, state.engine, state.storage)
    failing = [name for name, outcome in checks.items() if outcome != "ok"]
    body = {"status": "ready" if ready else "not ready", "checks": checks, "failing": failing}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format: HTTP, uploads, and job figures read from the jobs table."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
