"""Cohort comparison API (JSON and CSV) and its page; thin: parse, call the service, answer.

``router`` carries both the JSON/CSV routes under ``/api`` and the HTML page, so ``create_app``
includes one router for the whole feature.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.accounts.deps import API_ACCESS, PAGE_ACCESS
from app.comparison import design as designs
from app.comparison import pages, service
from app.comparison.schemas import ComparisonPublic
from app.core.downloads import attachment
from app.deps import DbSession, StorageDep
from app.exports import comparison_csv

api = APIRouter(prefix="/api", tags=["cohort comparison"])

CohortsQuery = Annotated[
    str | None,
    Query(
        description="Cohort names separated by commas, the reference first (e.g. "
        "`saline,drug`); every cohort when left out.",
        examples=["saline,drug"],
    ),
]
AlphaQuery = Annotated[float, Query(gt=0, lt=1, description="false discovery rate")]


@api.get("/experiments/{experiment_id}/comparison")
def comparison(
    experiment_id: int,
    db: DbSession,
    storage: StorageDep,
    cohorts: CohortsQuery = None,
    alpha: AlphaQuery = designs.ALPHA,
) -> ComparisonPublic:
    """Compare cohorts: per-syllable tests with FDR, effect sizes, the fingerprint classifier,
    transition differences, locomotion, warnings and a methods paragraph."""
    return service.compare(
        db,
        storage,
        experiment_id=experiment_id,
        cohorts=designs.parse_cohorts(cohorts),
        alpha=alpha,
    )


def _csv_response(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers=attachment(name),
    )


@api.get("/experiments/{experiment_id}/comparison/usage.csv", response_class=Response)
def usage_csv(
    experiment_id: int,
    db: DbSession,
    storage: StorageDep,
    cohorts: CohortsQuery = None,
) -> Response:
    """One row per animal × syllable: usage, bouts per minute, bout durations, locomotion,
    with subject and cohort metadata."""
    design, result = service.run(
        db, storage, experiment_id=experiment_id, cohorts=designs.parse_cohorts(cohorts)
    )
    return _csv_response(
        comparison_csv.usage_csv(design, result), f"experiment_{experiment_id}_usage.csv"
    )


@api.get("/experiments/{experiment_id}/comparison/statistics.csv", response_class=Response)
def statistics_csv(
    experiment_id: int,
    db: DbSession,
    storage: StorageDep,
    cohorts: CohortsQuery = None,
    alpha: AlphaQuery = designs.ALPHA,
) -> Response:
    """One row per syllable (and pair of cohorts): test, p, q, Cliff's delta, mean difference
    with its bootstrap CI."""
    _design, result = service.run(
        db,
        storage,
        experiment_id=experiment_id,
        cohorts=designs.parse_cohorts(cohorts),
        alpha=alpha,
    )
    return _csv_response(
        comparison_csv.statistics_csv(result), f"experiment_{experiment_id}_statistics.csv"
    )


@api.get("/experiments/{experiment_id}/comparison/transitions.csv", response_class=Response)
def transitions_csv(
    experiment_id: int,
    db: DbSession,
    storage: StorageDep,
    cohorts: CohortsQuery = None,
    alpha: AlphaQuery = designs.ALPHA,
) -> Response:
    """Transition matrices per cohort (tidy), with the test of each tested transition."""
    design, result = service.run(
        db,
        storage,
        experiment_id=experiment_id,
        cohorts=designs.parse_cohorts(cohorts),
        alpha=alpha,
    )
    return _csv_response(
        comparison_csv.transitions_csv(design, result),
        f"experiment_{experiment_id}_transitions.csv",
    )


router = APIRouter()
router.include_router(api, dependencies=API_ACCESS)
router.include_router(pages.router, dependencies=PAGE_ACCESS)
