"""JSON API for models, syllables, fitting and the session viewer's data."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, status
from fastapi.responses import FileResponse

from app.core.errors import NotFound
from app.core.storage import Storage
from app.deps import DbSession, SettingsDep, StorageDep
from app.experiments import service as experiments
from app.jobs.schemas import JobPublic
from app.syllables import groupings, service
from app.syllables.kinematics import SyllableKinematics, model_kinematics
from app.syllables.models import ModelStatus, Syllable, SyllableModel
from app.syllables.schemas import (
    BoutsColumns,
    ClipPublic,
    FitRequest,
    GroupingIn,
    GroupingPublic,
    GroupingsPublic,
    GroupingSuggestion,
    ModelPublic,
    SyllablePublic,
    SyllableUpdate,
    ViewerData,
)

router = APIRouter(prefix="/api", tags=["models and syllables"])

TRACK_POINTS = 3000


def syllable_public(
    syllable: Syllable, stats: dict[str, Any] | None, motion: SyllableKinematics | None = None
) -> SyllablePublic:
    stats = stats or {}
    k = syllable.index
    return SyllablePublic(
        id=syllable.id,
        index=syllable.index,
        name=syllable.name,
        label=syllable.label,
        description=syllable.description,
        color=syllable.color,
        usage=stats.get("usage", 0.0),
        bout_count=stats.get("bout_count", 0),
        median_duration_s=stats.get("median_duration_s"),
        durations_s=stats.get("durations_s", []),
        clips=[
            ClipPublic(
                url=f"/api/syllables/{syllable.id}/clips/{j}.mp4",
                session_id=c["session_id"],
                start_frame=c["start_frame"],
                end_frame=c["end_frame"],
            )
            for j, c in enumerate(syllable.clips or [])
        ],
        speed=_rounded(motion.speed.get(k)) if motion else None,
        turning_deg_s=_rounded(motion.turning_deg_s.get(k)) if motion else None,
        body_length=_rounded(motion.body_length.get(k)) if motion else None,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def model_public(
    db: DbSession, model: SyllableModel, *, detail: bool, storage: Storage | None = None
) -> ModelPublic:
    job = service.fit_job_of(db, model)
    out = ModelPublic(
        id=model.id,
        experiment_id=model.experiment_id,
        version=model.version,
        status=service.model_status(db, model),
        states=model.states,
        states_used=model.states_used,
        median_duration_s=model.median_duration_s,
        session_ids=list(model.session_ids or []),
        settings=dict(model.settings or {}),
        training_curve=list(model.training_curve or (job.metrics if job else []) or []),
        created_at=model.created_at,
        fitted_at=model.fitted_at,
        job_id=job.id if job else None,
    )
    if detail and model.status == ModelStatus.ready:
        stats = service.syllable_statistics(db, model.id)
        out.transition_matrix = service.transition_matrix(db, model.id, model.states)
        motion = model_kinematics(db, storage, model) if storage is not None else None
        out.syllables = [syllable_public(s, stats.get(s.index), motion) for s in model.syllables]
        if motion is not None:
            out.kinematics_unit, out.kinematics_note = motion.unit, motion.note
    return out


@router.post("/experiments/{experiment_id}/fit", status_code=status.HTTP_202_ACCEPTED)
def fit_experiment(
    experiment_id: int, db: DbSession, settings: SettingsDep, body: FitRequest | None = None
) -> JobPublic:
    """Fit a new model version on the experiment's sessions, then segment them all."""
    body = body or FitRequest()
    experiment = experiments.get_experiment_or_raise(db, experiment_id)
    _model, job = service.start_fit(
        db,
        experiment=experiment,
        settings=settings,
        states=body.states,
        epochs=body.epochs,
        session_ids=body.session_ids,
        include_flagged=body.include_flagged,
    )
    db.commit()
    return JobPublic.model_validate(job)


@router.get("/experiments/{experiment_id}/models")
def list_models(experiment_id: int, db: DbSession) -> list[ModelPublic]:
    experiments.get_experiment_or_raise(db, experiment_id)
    return [model_public(db, m, detail=False) for m in service.list_models(db, experiment_id)]


@router.get("/models/{model_id}")
def get_model(model_id: int, db: DbSession, storage: StorageDep) -> ModelPublic:
    """A model with its syllables: usage, bouts, durations, kinematics and example clips."""
    return model_public(db, service.get_model_or_raise(db, model_id), detail=True, storage=storage)


@router.patch("/syllables/{syllable_id}")
def update_syllable(syllable_id: int, body: SyllableUpdate, db: DbSession) -> SyllablePublic:
    syllable = service.get_syllable_or_raise(db, syllable_id)
    service.update_syllable(db, syllable, name=body.name, description=body.description)
    db.commit()
    stats = service.syllable_statistics(db, syllable.model_id)
    return syllable_public(syllable, stats.get(syllable.index))


@router.get("/syllables/{syllable_id}/clips/{number}.mp4", response_class=FileResponse)
def syllable_clip(syllable_id: int, number: int, db: DbSession, storage: StorageDep) -> Any:
    syllable = service.get_syllable_or_raise(db, syllable_id)
    clips = syllable.clips or []
    if not 0 <= number < len(clips):
        raise NotFound(f"Syllable {syllable_id} has no clip {number}.")
    return FileResponse(storage.local(clips[number]["path"]), media_type="video/mp4")


@router.get("/sessions/{session_id}/video", response_class=FileResponse)
def session_video(session_id: int, db: DbSession, storage: StorageDep) -> Any:
    """The browser-playable copy (answers HTTP range requests, so the player can seek)."""
    session = experiments.get_session_or_raise(db, session_id)
    if not session.browser_path:
        raise NotFound(f"Session {session_id} has no browser copy yet; wait for ingest to finish.")
    return FileResponse(storage.local(session.browser_path), media_type="video/mp4")


@router.get("/sessions/{session_id}/thumbnail.jpg", response_class=FileResponse)
def session_thumbnail(session_id: int, db: DbSession, storage: StorageDep) -> Any:
    session = experiments.get_session_or_raise(db, session_id)
    if not session.thumbnail_path:
        raise NotFound(f"Session {session_id} has no thumbnail yet.")
    return FileResponse(storage.local(session.thumbnail_path), media_type="image/jpeg")


@router.get("/sessions/{session_id}/viewer")
def session_viewer(session_id: int, db: DbSession, storage: StorageDep) -> ViewerData:
    """Everything the session viewer draws: bouts (not per-frame points) and thin tracks."""
    from model.features import load

    session = experiments.get_session_or_raise(db, session_id)
    segmentation = service.latest_segmentation(db, session.id)
    frame_count = session.frame_count or 0
    fps = session.fps or 30.0
    tracks: dict[str, list[float]] = {}
    first_time = 0.0
    if session.features_path:
        features = load(storage.local(session.features_path))
        times = np.asarray(features.times)
        tracks["time_s"] = [round(float(t), 4) for t in service.downsample(times, TRACK_POINTS)]
        speed = service.downsample(np.asarray(features.scalars["speed"]), TRACK_POINTS)
        tracks["speed"] = [round(float(v), 2) for v in speed]
        frame_count = features.n_frames
    bouts = BoutsColumns(start=[], end=[], syllable=[])
    model_ref = None
    syllables: list[dict[str, Any]] = []
    if segmentation is not None:
        model = service.get_model_or_raise(db, segmentation.model_id)
        grouping = groupings.current(db, model.id)
        model_ref = {
            "id": model.id,
            "version": model.version,
            "grouping_version": grouping.version if grouping else 0,
        }
        arr = groupings.group_bouts(
            service.session_bouts(db, segmentation.id), grouping, model.states
        )
        group_names = grouping.names() if grouping else {}
        bouts = BoutsColumns(
            start=arr[:, 0].tolist(), end=arr[:, 1].tolist(), syllable=arr[:, 2].tolist()
        )
        used = set(bouts.syllable)
        syllables = [
            {
                "id": s.id,
                "index": s.index,
                "name": group_names.get(s.index, s.label),
                "color": s.color,
            }
            for s in model.syllables
            if s.index in used
        ]
        prob = service.downsample(service.probability_of(segmentation), TRACK_POINTS)
        tracks["probability"] = [round(float(v), 3) for v in prob]
    return ViewerData(
        session_id=session.id,
        video_url=f"/api/sessions/{session.id}/video" if session.browser_path else None,
        fps=fps,
        frame_count=frame_count,
        duration_s=session.duration_s or frame_count / fps,
        first_time_s=first_time,
        model=model_ref,
        syllables=syllables,
        bouts=bouts,
        tracks=tracks,
        quality=session.quality,
    )


def _groupings_public(db: DbSession, model_id: int) -> GroupingsPublic:
    rows = groupings.history(db, model_id)
    now = groupings.current(db, model_id)
    history = [
        GroupingPublic(
            version=r.version, groups=r.groups, created_at=r.created_at, undone_at=r.undone_at
        )
        for r in rows
    ]
    current = next((h for h in history if now and h.version == now.version), None)
    return GroupingsPublic(current=current, history=history)


@router.get("/models/{model_id}/groupings")
def get_groupings(model_id: int, db: DbSession) -> GroupingsPublic:
    """The lab's grouping of this model's syllables in force, and every earlier version."""
    service.get_model_or_raise(db, model_id)
    return _groupings_public(db, model_id)


@router.post("/models/{model_id}/groupings", status_code=status.HTTP_201_CREATED)
def save_grouping(model_id: int, body: GroupingIn, db: DbSession) -> GroupingsPublic:
    """A new grouping version (every group in force); the model itself stays frozen."""
    model = service.get_model_or_raise(db, model_id)
    groupings.save(db, model, [g.model_dump() for g in body.groups])
    db.commit()
    return _groupings_public(db, model_id)


@router.post("/models/{model_id}/groupings/undo")
def undo_grouping(model_id: int, db: DbSession) -> GroupingsPublic:
    """Back to the grouping before the one in force (409 when there is none to undo)."""
    groupings.undo(db, service.get_model_or_raise(db, model_id))
    db.commit()
    return _groupings_public(db, model_id)


@router.get("/models/{model_id}/grouping-suggestions")
def grouping_suggestions(
    model_id: int, db: DbSession, storage: StorageDep
) -> list[GroupingSuggestion]:
    """Pairs of syllables that may be one behaviour, with why: alike in speed, turning, body
    length and bout duration, and often following one another."""
    model = service.get_model_or_raise(db, model_id)
    if model.status != ModelStatus.ready:
        return []
    stats = service.syllable_statistics(db, model.id)
    motion = model_kinematics(db, storage, model)
    now = groupings.current(db, model.id)
    found = groupings.suggest(
        {k: s["usage"] for k, s in stats.items()},
        np.asarray(service.transition_matrix(db, model.id, model.states)),
        {"speed": motion.speed, "turning_deg_s": motion.turning_deg_s,
         "body_length": motion.body_length},
        {k: s["median_duration_s"] for k, s in stats.items()},
        unit="BL" if motion.unit == "body lengths" else motion.unit,
        grouped={k for _n, members in (now.groups if now else []) for k in members},
    )  # fmt: skip
    names = service.syllable_names(db, model.id)
    return [
        GroupingSuggestion(
            syllables=list(s.syllables),
            labels=[names.get(k, f"syllable {k}") for k in s.syllables],
            distance=round(s.distance, 4),
            reason=s.reason,
        )
        for s in found
    ]
