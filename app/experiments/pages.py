"""Server-rendered pages: experiments, sessions and the session viewer (thin views).

The pages render what a person needs to see first; the live parts (job progress, uploads, the
viewer's ethogram) are drawn by ``static/js/*`` from the JSON API, so everything a page shows is
also reachable by a script.
"""

from __future__ import annotations

import gzip
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import plotly
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from app.accounts import service as accounts
from app.accounts.deps import CurrentUser
from app.core.errors import NotFound
from app.deps import DbSession
from app.experiments import service
from app.syllables import pages as syllable_pages

router = APIRouter(include_in_schema=False)
# The model and gallery pages live with their domain; included here so create_app wires one
# pages router.
router.include_router(syllable_pages.router)

FULL_PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
# plotly.js's cartesian partial bundle (every chart the pages draw), put beside the installed
# packages by scripts/fetch-plotly at install time; the full bundle when it is missing.
PARTIAL_PLOTLY_JS = Path(sys.prefix) / "share" / "syllabary" / "plotly-cartesian.min.js"
PLOTLY_JS = PARTIAL_PLOTLY_JS if PARTIAL_PLOTLY_JS.is_file() else FULL_PLOTLY_JS


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a template of ``templates/`` with ``context``."""
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "not_found.html", {"message": message}, status_code=404)


@lru_cache(maxsize=1)
def _plotly_gzipped() -> bytes:
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=6)


@router.get("/static/vendor/plotly.min.js", response_model=None)
def plotly_js(request: Request) -> Response:
    """plotly.js served locally, never from a CDN: the cartesian partial bundle (1.5 MB,
    0.5 MB gzipped) when installed, else the ``plotly`` package's full one (4.8 MB, 1.4 MB
    gzipped); gzipped for browsers that accept it, and cached for a day."""
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            _plotly_gzipped(),
            media_type="text/javascript",
            headers={**headers, "Content-Encoding": "gzip"},
        )
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=headers)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbSession, user: CurrentUser) -> HTMLResponse:
    experiments = service.list_experiments(db, group_ids=accounts.group_ids(db, user=user))
    counts = service.session_counts(db)
    rows = [(e, counts.get(e.id, 0)) for e in experiments]
    return render(request, "home.html", {"rows": rows})


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(experiment_id: int, request: Request, db: DbSession) -> HTMLResponse:
    try:
        experiment = service.get_experiment_or_raise(db, experiment_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    return render(
        request,
        "experiment.html",
        {"experiment": experiment, "page_data": {"experiment_id": experiment.id}},
    )


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(session_id: int, request: Request, db: DbSession) -> HTMLResponse:
    """The session viewer: video, ethogram, tracks (data from ``/api/sessions/{id}/viewer``)."""
    try:
        session = service.get_session_or_raise(db, session_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    subject = session.subject
    return render(
        request,
        "session.html",
        {
            "session": session,
            "experiment": session.experiment,
            "subject": subject.name if subject else None,
            "cohort": subject.cohort.name if subject and subject.cohort else None,
            "page_data": {
                "session_id": session.id,
                "experiment_id": session.experiment_id,
                "fps": session.fps,
                "frame_count": session.frame_count,
            },
        },
    )
