"""Server-rendered pages for experiments and sessions (thin views over the service)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import DbSession
from app.experiments import service

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbSession) -> HTMLResponse:
    experiments = service.list_experiments(db)
    rows = [(e, service.count_sessions(db, e.id)) for e in experiments]
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "home.html", {"rows": rows}
    )
    return response
