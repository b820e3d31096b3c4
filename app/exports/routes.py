"""Downloads: ethogram and bouts CSV per session, ZIP per experiment. They stream at once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.core.downloads import attachment
from app.deps import DbSession, StorageDep
from app.experiments import service as experiments
from app.exports import service

router = APIRouter(prefix="/api", tags=["exports"])


@router.get("/sessions/{session_id}/ethogram.csv", response_class=StreamingResponse)
def ethogram_csv(session_id: int, db: DbSession, storage: StorageDep) -> StreamingResponse:
    session = experiments.get_session_or_raise(db, session_id)
    chunks = service.ethogram_csv(db, storage, session)
    stem = session.original_filename.rsplit(".", 1)[0]
    return StreamingResponse(
        chunks, media_type="text/csv", headers=attachment(f"{stem}.ethogram.csv")
    )


@router.get("/sessions/{session_id}/bouts.csv", response_class=StreamingResponse)
def bouts_csv(session_id: int, db: DbSession, storage: StorageDep) -> StreamingResponse:
    session = experiments.get_session_or_raise(db, session_id)
    chunks = service.bouts_csv(db, storage, session)
    stem = session.original_filename.rsplit(".", 1)[0]
    return StreamingResponse(chunks, media_type="text/csv", headers=attachment(f"{stem}.bouts.csv"))


@router.get("/sessions/{session_id}/bouts.boris.csv", response_class=StreamingResponse)
def boris_csv(session_id: int, db: DbSession, storage: StorageDep) -> StreamingResponse:
    """The bouts as BORIS's tabular events export: START and STOP per bout."""
    session = experiments.get_session_or_raise(db, session_id)
    chunks = service.boris_csv(db, storage, session)
    stem = session.original_filename.rsplit(".", 1)[0]
    return StreamingResponse(chunks, media_type="text/csv", headers=attachment(f"{stem}.boris.csv"))


@router.get("/sessions/{session_id}/session.nwb", response_class=FileResponse)
def session_nwb(session_id: int, db: DbSession, storage: StorageDep) -> FileResponse:
    """The session as NWB (pynwb, DANDI): subject and cohort, the track, the syllable of every
    frame and the bouts as an interval table."""
    session = experiments.get_session_or_raise(db, session_id)
    folder = Path(tempfile.mkdtemp(prefix="nwb-"))
    path = folder / "session.nwb"
    try:
        service.session_nwb(db, storage, session, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    stem = session.original_filename.rsplit(".", 1)[0]
    return FileResponse(
        path,
        media_type="application/x-nwb",
        filename=f"{stem}.nwb",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.get("/experiments/{experiment_id}/export.zip", response_class=StreamingResponse)
def experiment_zip(experiment_id: int, db: DbSession, storage: StorageDep) -> StreamingResponse:
    experiment = experiments.get_experiment_or_raise(db, experiment_id)
    return StreamingResponse(
        service.experiment_zip(db, storage, experiment),
        media_type="application/zip",
        headers=attachment(f"experiment_{experiment.id}.zip"),
    )
