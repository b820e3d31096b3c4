"""Which lab group a URL's data belongs to, from its path parameters.

Every API route and page names its data by one id (``experiment_id``, ``session_id``, ...);
this maps that id to the experiment's lab group, so one check guards every route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.experiments.models import Experiment, Subject, VideoSession
from app.jobs.models import Job
from app.syllables.models import Syllable, SyllableModel
from app.uploads.models import Upload


def _experiment(value: int | str) -> Select[Any]:
    return select(Experiment.group_id).where(Experiment.id == value)


def _session(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(VideoSession, VideoSession.experiment_id == Experiment.id)
        .where(VideoSession.id == value)
    )


def _subject(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(Subject, Subject.experiment_id == Experiment.id)
        .where(Subject.id == value)
    )


def _job(value: int | str) -> Select[Any]:
    # A job names its experiment, or only its session (ingest jobs).
    via_experiment = (
        select(Experiment.group_id)
        .join(Job, Job.experiment_id == Experiment.id)
        .where(Job.id == value)
    )
    via_session = (
        select(Experiment.group_id)
        .join(VideoSession, VideoSession.experiment_id == Experiment.id)
        .join(Job, Job.session_id == VideoSession.id)
        .where(Job.id == value, Job.experiment_id.is_(None))
    )
    return via_experiment.union_all(via_session)  # type: ignore[return-value]


def _model(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(SyllableModel, SyllableModel.experiment_id == Experiment.id)
        .where(SyllableModel.id == value)
    )


def _syllable(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(SyllableModel, SyllableModel.experiment_id == Experiment.id)
        .join(Syllable, Syllable.model_id == SyllableModel.id)
        .where(Syllable.id == value)
    )


def _annotation(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(VideoSession, VideoSession.experiment_id == Experiment.id)
        .join(Annotation, Annotation.session_id == VideoSession.id)
        .where(Annotation.id == value)
    )


def _upload(value: int | str) -> Select[Any]:
    return (
        select(Experiment.group_id)
        .join(Upload, Upload.experiment_id == Experiment.id)
        .where(Upload.id == value)
    )


# Path parameter -> query for the owning group; parameters of integer ids are parsed first.
RESOLVERS: dict[str, tuple[bool, Callable[[int | str], Select[Any]]]] = {
    "experiment_id": (True, _experiment),
    "session_id": (True, _session),
    "subject_id": (True, _subject),
    "job_id": (True, _job),
    "model_id": (True, _model),
    "syllable_id": (True, _syllable),
    "upload_id": (False, _upload),
    "annotation_id": (True, _annotation),
}


def owning_groups(db: Session, path_params: dict[str, str]) -> list[tuple[str, int | None]]:
    """For each data id in the path: (its parameter name, its group id or None if no such row).

    Ids that are not integers where integers are expected are left out: the route answers 422.
    """
    found: list[tuple[str, int | None]] = []
    for name, raw in path_params.items():
        if name not in RESOLVERS:
            continue
        is_int, query = RESOLVERS[name]
        value: int | str = raw
        if is_int:
            try:
                value = int(raw)
            except ValueError:
                continue
            if not -(2**63) <= value < 2**63:
                found.append((name, None))
                continue
        found.append((name, db.scalar(query(value))))
    return found
