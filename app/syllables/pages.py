"""Server-rendered pages of a fitted model: its summary and its syllable gallery (thin views)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.core.errors import NotFound
from app.deps import DbSession
from app.experiments import service as experiments
from app.syllables import service

router = APIRouter(include_in_schema=False)


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def _model_page(request: Request, db: DbSession, model_id: int, template: str) -> HTMLResponse:
    try:
        model = service.get_model_or_raise(db, model_id)
    except NotFound as exc:
        return _render(request, "not_found.html", {"message": str(exc)}, status_code=404)
    experiment = experiments.get_experiment_or_raise(db, model.experiment_id)
    return _render(
        request,
        template,
        {
            "model": model,
            "experiment": experiment,
            "page_data": {"model_id": model.id, "experiment_id": experiment.id},
        },
    )


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(model_id: int, request: Request, db: DbSession) -> HTMLResponse:
    """States used, usage, durations, transition matrix and training curve of one model."""
    return _model_page(request, db, model_id, "model.html")


@router.get("/models/{model_id}/syllables", response_class=HTMLResponse)
def gallery_page(model_id: int, request: Request, db: DbSession) -> HTMLResponse:
    """Every syllable of a model: editable name and description, durations, example clips."""
    return _model_page(request, db, model_id, "gallery.html")
