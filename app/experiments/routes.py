"""JSON API for experiments and sessions (thin: parse, call the service, commit, answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile, status

from app.core.errors import TooLarge
from app.core.storage import UploadTooLarge
from app.deps import DbSession, SettingsDep, StorageDep
from app.experiments import service
from app.experiments.models import VideoSession
from app.experiments.schemas import ExperimentCreate, ExperimentPublic, SessionPublic
from app.jobs.schemas import JobPublic

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
        jobs=[JobPublic.model_validate(job) for job in session.jobs],
    )


@router.post("/experiments", status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, db: DbSession) -> ExperimentPublic:
    experiment = service.create_experiment(db, name=body.name, description=body.description)
    db.commit()
    return ExperimentPublic.model_validate(experiment)


@router.get("/experiments")
def list_experiments(db: DbSession) -> list[ExperimentPublic]:
    return [ExperimentPublic.model_validate(e) for e in service.list_experiments(db)]


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
    db: DbSession,
    settings: SettingsDep,
    storage: StorageDep,
    file: Annotated[UploadFile, File(description="the video file")],
    subject: Annotated[str | None, Form(max_length=200)] = None,
    cohort: Annotated[str | None, Form(max_length=200)] = None,
) -> SessionPublic:
    """Upload one video as a session of ``subject`` (created if new) in ``cohort``."""
    experiment = service.get_experiment_or_raise(db, experiment_id)
    filename = file.filename or "video"

    async def chunks():  # type: ignore[no-untyped-def]
        while data := await file.read(CHUNK):
            yield data

    try:
        stored = await storage.save_async_chunks(chunks(), filename, settings.max_upload_bytes)
    except UploadTooLarge as exc:
        raise TooLarge(str(exc)) from exc
    session = service.create_session(
        db,
        experiment=experiment,
        stored=stored,
        filename=filename,
        subject_name=subject,
        cohort_name=cohort,
        settings=settings,
    )
    db.commit()
    db.refresh(session)
    return session_public(session)


@router.get("/sessions/{session_id}")
def get_session(session_id: int, db: DbSession) -> SessionPublic:
    return session_public(service.get_session_or_raise(db, session_id))
