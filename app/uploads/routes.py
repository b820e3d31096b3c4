"""Resumable uploads: start, send chunks (Content-Range), ask how much arrived."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request, status
from pydantic import BaseModel, Field

from app.deps import DbSession, SettingsDep, StorageDep
from app.experiments import service as experiments
from app.uploads import service
from app.uploads.models import Upload

router = APIRouter(prefix="/api", tags=["uploads"])


class UploadStart(BaseModel):
    filename: str = Field(min_length=1, max_length=500)
    size: int = Field(ge=0, description="the file's length in bytes")
    subject: str | None = Field(default=None, max_length=200)
    cohort: str | None = Field(default=None, max_length=200)


class UploadPublic(BaseModel):
    id: str
    experiment_id: int
    filename: str
    size_bytes: int
    received_bytes: int
    status: str
    session_id: int | None
    chunk_size: int = service.CHUNK_SIZE


def upload_public(upload: Upload) -> UploadPublic:
    return UploadPublic(
        id=upload.id,
        experiment_id=upload.experiment_id,
        filename=upload.filename,
        size_bytes=upload.size_bytes,
        received_bytes=upload.received_bytes,
        status=upload.status,
        session_id=upload.session_id,
    )


@router.post("/experiments/{experiment_id}/uploads", status_code=status.HTTP_201_CREATED)
def start_upload(
    experiment_id: int,
    body: UploadStart,
    db: DbSession,
    settings: SettingsDep,
    storage: StorageDep,
) -> UploadPublic:
    """Announce a file; then PUT its bytes in chunks to /api/uploads/{id}."""
    experiment = experiments.get_experiment_or_raise(db, experiment_id)
    upload = service.start(
        db,
        experiment=experiment,
        filename=body.filename,
        size=body.size,
        subject=body.subject,
        cohort=body.cohort,
        settings=settings,
        storage=storage,
    )
    db.commit()
    return upload_public(upload)


@router.get("/uploads/{upload_id}")
def get_upload(upload_id: str, db: DbSession, storage: StorageDep) -> UploadPublic:
    """How many bytes arrived: a client resumes from ``received_bytes``."""
    upload = service.reconcile(db, service.get_or_raise(db, upload_id), storage)
    db.commit()
    return upload_public(upload)


@router.put("/uploads/{upload_id}")
async def put_chunk(
    upload_id: str,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    storage: StorageDep,
    content_range: str | None = Header(default=None),
) -> UploadPublic:
    """One chunk of bytes with ``Content-Range: bytes START-END/TOTAL``."""
    upload = service.get_or_raise(db, upload_id)
    await service.receive_chunk(
        db,
        upload=upload,
        content_range=content_range,
        body=request.stream(),
        settings=settings,
        storage=storage,
    )
    db.commit()
    return upload_public(upload)
