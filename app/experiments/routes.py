"""JSON API for experiments and sessions (thin: parse, call the service, commit, answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile, status

from app.accounts import service as accounts
from app.accounts.deps import CurrentUser
from app.core.errors import BadInput, TooLarge
from app.core.storage import UploadTooLarge
from app.deps import DbSession, SettingsDep, StorageDep
from app.experiments import service
from app.experiments.models import Subject, VideoSession
from app.experiments.schemas import (
    CohortCreate,
    CohortPublic,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentUpdate,
    SessionPublic,
    SessionUpdate,
    SubjectPublic,
    SubjectUpdate,
)
from app.jobs.schemas import JobPublic
from app.uploads import service as uploads
from app.uploads.validation import check_video_head, clean_filename

router = APIRouter(prefix="/api", tags=["experiments"])

CHUNK = 1024 * 1024


def session_public(session: VideoSession) -> SessionPublic:
    subject = session.subject
    return SessionPublic(
        id=session.id,
        experiment_id=session.experiment_id,
        status=service.session_status(session),
        subject=subject.name if subject else None,
        cohort=subject.cohort.name if subject and subject.cohort else None,
        original_filename=session.original_filename,
        size_bytes=session.size_bytes,
        sha256=session.sha256,
        recorded_on=session.recorded_on,
        notes=session.notes,
        frame_count=session.frame_count,
        fps=session.fps,
        duration_s=session.duration_s,
        width=session.width,
        height=session.height,
        codec=session.codec,
        pix_fmt=session.pix_fmt,
        created_at=session.created_at,
        quality=session.quality,
        px_per_cm=session.px_per_cm,
        fit_problem=service.fit_problem(session.quality),
        thumbnail_url=f"/api/sessions/{session.id}/thumbnail.jpg"
        if session.thumbnail_path
        else None,
        video_url=f"/api/sessions/{session.id}/video" if session.browser_path else None,
        jobs=[JobPublic.model_validate(job) for job in session.jobs],
    )


@router.post("/experiments", status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, db: DbSession, user: CurrentUser) -> ExperimentPublic:
    group_id = accounts.group_for_new_experiment(db, user=user, group_id=body.group_id)
    experiment = service.create_experiment(
        db, name=body.name, description=body.description, group_id=group_id
    )
    db.commit()
    return ExperimentPublic.model_validate(experiment)


@router.get("/experiments")
def list_experiments(db: DbSession, user: CurrentUser) -> list[ExperimentPublic]:
    """The experiments of your lab groups."""
    experiments = service.list_experiments(db, group_ids=accounts.group_ids(db, user=user))
    return [ExperimentPublic.model_validate(e) for e in experiments]


@router.get("/experiments/{experiment_id}")
def get_experiment(experiment_id: int, db: DbSession) -> ExperimentPublic:
    return ExperimentPublic.model_validate(service.get_experiment_or_raise(db, experiment_id))


@router.get("/experiments/{experiment_id}/sessions")
def list_sessions(experiment_id: int, db: DbSession) -> list[SessionPublic]:
    experiment = service.get_experiment_or_raise(db, experiment_id)
    return [session_public(s) for s in experiment.sessions]


@router.post("/experiments/{experiment_id}/sessions", status_code=status.HTTP_201_CREATED)
async def upload_session(
    experiment_id: int,
    request: Request,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    storage: StorageDep,
    file: Annotated[UploadFile, File(description="the video file")],
    subject: Annotated[str | None, Form(max_length=200)] = None,
    cohort: Annotated[str | None, Form(max_length=200)] = None,
) -> SessionPublic:
    """Upload one video as a session of ``subject`` (created if new) in ``cohort``: 201 and the
    new session, or 200 and the existing one when the experiment already has these bytes."""
    experiment = service.get_experiment_or_raise(db, experiment_id)
    filename = clean_filename(file.filename)

    async def chunks():  # type: ignore[no-untyped-def]
        while data := await file.read(CHUNK):
            yield data

    try:
        stored = await storage.save_async_chunks(
            chunks(),
            filename,
            settings.max_upload_bytes,
            check_head=lambda head: check_video_head(head, filename),
        )
    except UploadTooLarge as exc:
        raise TooLarge(str(exc)) from exc
    session, duplicate = uploads.record_session(
        db, experiment=experiment, sha256=stored.sha256, store=lambda: stored, filename=filename,
        subject=subject, cohort=cohort, settings=settings,
    )  # fmt: skip
    if duplicate:  # the same bytes are already this session: nothing new was created
        response.status_code = status.HTTP_200_OK
    db.commit()
    db.refresh(session)
    return session_public(session)


@router.get("/sessions/{session_id}")
def get_session(session_id: int, db: DbSession) -> SessionPublic:
    return session_public(service.get_session_or_raise(db, session_id))


@router.patch("/experiments/{experiment_id}")
def update_experiment(
    experiment_id: int, body: ExperimentUpdate, db: DbSession
) -> ExperimentPublic:
    experiment = service.get_experiment_or_raise(db, experiment_id)
    service.update_experiment(
        db,
        experiment,
        name=body.name,
        description=body.description,
        px_per_cm=body.px_per_cm,
        clear_px_per_cm=body.clear_px_per_cm,
    )
    db.commit()
    return ExperimentPublic.model_validate(experiment)


@router.get("/experiments/{experiment_id}/cohorts")
def list_cohorts(experiment_id: int, db: DbSession) -> list[CohortPublic]:
    service.get_experiment_or_raise(db, experiment_id)
    return [CohortPublic.model_validate(c) for c in service.list_cohorts(db, experiment_id)]


@router.post("/experiments/{experiment_id}/cohorts", status_code=status.HTTP_201_CREATED)
def create_cohort(experiment_id: int, body: CohortCreate, db: DbSession) -> CohortPublic:
    experiment = service.get_experiment_or_raise(db, experiment_id)
    cohort = service.get_or_create_cohort(db, experiment=experiment, name=body.name)
    if body.description:
        cohort.description = body.description
    db.commit()
    return CohortPublic.model_validate(cohort)


def subject_public(subject: Subject) -> SubjectPublic:
    return SubjectPublic(
        id=subject.id,
        name=subject.name,
        cohort=subject.cohort.name if subject.cohort else None,
        sex=subject.sex,
        age=subject.age,
        genotype=subject.genotype,
        notes=subject.notes,
        session_ids=[s.id for s in subject.sessions],
    )


@router.get("/experiments/{experiment_id}/subjects")
def list_subjects(experiment_id: int, db: DbSession) -> list[SubjectPublic]:
    service.get_experiment_or_raise(db, experiment_id)
    return [subject_public(s) for s in service.list_subjects(db, experiment_id)]


@router.patch("/subjects/{subject_id}")
def update_subject(subject_id: int, body: SubjectUpdate, db: DbSession) -> SubjectPublic:
    subject = service.get_subject_or_raise(db, subject_id)
    service.update_subject(
        db,
        subject,
        cohort_name=body.cohort,
        name=body.name,
        sex=body.sex,
        age=body.age,
        genotype=body.genotype,
        notes=body.notes,
    )
    db.commit()
    return subject_public(subject)


@router.patch("/sessions/{session_id}")
def update_session(session_id: int, body: SessionUpdate, db: DbSession) -> SessionPublic:
    session = service.get_session_or_raise(db, session_id)
    service.update_session(
        db,
        session,
        subject_name=body.subject,
        cohort_name=body.cohort,
        recorded_on=body.recorded_on,
        notes=body.notes,
        px_per_cm=body.px_per_cm,
        clear_px_per_cm=body.clear_px_per_cm,
    )
    db.commit()
    db.refresh(session)
    return session_public(session)


@router.post("/experiments/{experiment_id}/assignments")
async def assign_from_csv(
    experiment_id: int,
    db: DbSession,
    file: Annotated[UploadFile, File(description="CSV with columns filename,subject,cohort")],
) -> dict[str, Any]:
    """Assign subjects and cohorts to many sessions at once, by original file name."""
    experiment = service.get_experiment_or_raise(db, experiment_id)
    raw = await file.read(5 * 1024 * 1024 + 1)
    if len(raw) > 5 * 1024 * 1024:
        raise BadInput("The assignment CSV is larger than 5 MB; split it.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput("The assignment CSV must be UTF-8 text (filename,subject,cohort).") from exc
    result = service.assign_from_csv(db, experiment, text)
    db.commit()
    return result
