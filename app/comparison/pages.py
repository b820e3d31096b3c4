"""The cohort comparison page (thin view; the charts are drawn by ``static/js/comparison.js``
from ``/api/experiments/{id}/comparison``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.comparison import design
from app.core.errors import NotFound
from app.deps import DbSession
from app.experiments import service as experiments
from app.syllables import service as syllables

router = APIRouter(include_in_schema=False)


@router.get("/experiments/{experiment_id}/comparison", response_class=HTMLResponse)
def comparison_page(
    experiment_id: int, request: Request, db: DbSession, cohorts: str | None = None
) -> HTMLResponse:
    """Pick cohorts; see usage per syllable, transitions, durations, the fingerprint."""
    templates = request.app.state.templates
    try:
        experiment = experiments.get_experiment_or_raise(db, experiment_id)
    except NotFound as exc:
        response: HTMLResponse = templates.TemplateResponse(
            request, "not_found.html", {"message": str(exc)}, status_code=404
        )
        return response
    names = [c.name for c in design.cohort_names(db, experiment_id)]
    chosen = [c for c in design.parse_cohorts(cohorts) or names if c in names]
    # The picker lists the chosen cohorts first, in the order asked (the first is the
    # reference), then the others.
    names = chosen + [n for n in names if n not in chosen]
    model = syllables.latest_ready_model(db, experiment_id)
    response = templates.TemplateResponse(
        request,
        "comparison.html",
        {
            "experiment": experiment,
            "cohorts": names,
            "chosen": chosen,
            "model": model,
            "page_data": {
                "experiment_id": experiment.id,
                "cohorts": names,
                "chosen": chosen,
                "model_id": model.id if model else None,
            },
        },
    )
    return response
