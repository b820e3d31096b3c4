"""Models, syllables and segmentations: plain functions over a database session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import BadInput, NotFound
from app.experiments import service as experiments
from app.experiments.models import Experiment, VideoSession
from app.jobs import service as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.syllables.models import Bout, ModelStatus, Segmentation, Syllable, SyllableModel
from app.syllables.palette import syllable_color
from model.summary import FitSummary

MAX_STATES = 100


def get_model_or_raise(db: Session, model_id: int) -> SyllableModel:
    model = db.get(SyllableModel, model_id)
    if model is None:
        raise NotFound(f"Model {model_id} does not exist.")
    return model


def get_syllable_or_raise(db: Session, syllable_id: int) -> Syllable:
    syllable = db.get(Syllable, syllable_id)
    if syllable is None:
        raise NotFound(f"Syllable {syllable_id} does not exist.")
    return syllable


def list_models(db: Session, experiment_id: int) -> list[SyllableModel]:
    return list(
        db.scalars(
            select(SyllableModel)
            .where(SyllableModel.experiment_id == experiment_id)
            .order_by(SyllableModel.version.desc())
        )
    )


def latest_ready_model(db: Session, experiment_id: int) -> SyllableModel | None:
    return db.scalar(
        select(SyllableModel)
        .where(
            SyllableModel.experiment_id == experiment_id,
            SyllableModel.status == ModelStatus.ready,
        )
        .order_by(SyllableModel.version.desc())
        .limit(1)
    )


def ingested_sessions(db: Session, experiment_id: int) -> list[VideoSession]:
    return list(
        db.scalars(
            select(VideoSession)
            .where(
                VideoSession.experiment_id == experiment_id,
                VideoSession.features_path.is_not(None),
            )
            .order_by(VideoSession.id)
        )
    )


def start_fit(
    db: Session,
    *,
    experiment: Experiment,
    settings: Settings,
    states: int = 40,
    epochs: int | None = None,
    session_ids: Sequence[int] | None = None,
    include_flagged: bool = False,
) -> tuple[SyllableModel, Job]:
    """Create the next model version of an experiment and queue its fit job. Without
    ``session_ids``, every ready session goes in except those a model cannot handle
    (:func:`app.experiments.service.fit_problem`), unless ``include_flagged``; sessions named
    in ``session_ids`` go in whatever their flags."""
    if not 2 <= states <= MAX_STATES:
        raise BadInput(f"The number of states must be between 2 and {MAX_STATES}, not {states}.")
    if epochs is not None and not 1 <= epochs <= 1000:
        raise BadInput(f"epochs must be between 1 and 1000, not {epochs}.")
    ready = {s.id: s for s in ingested_sessions(db, experiment.id)}
    if session_ids:
        unknown = [i for i in session_ids if i not in ready]
        if unknown:
            raise BadInput(
                f"Sessions {unknown} are not ready for fitting (not in this experiment, or "
                "still being processed, or failed). Wait for them or leave them out."
            )
        chosen = list(dict.fromkeys(session_ids))
    else:
        flagged = {
            i: problem
            for i, s in ready.items()
            if (problem := experiments.fit_problem(s.quality)) and not include_flagged
        }
        chosen = [i for i in ready if i not in flagged]
        if ready and not chosen:
            names = "; ".join(f"{ready[i].original_filename}: {p}" for i, p in flagged.items())
            raise BadInput(
                f"Every ready session is left out of fits ({names}). Fix the videos, or fit "
                "them anyway by naming them in session_ids or with include_flagged."
            )
    if not chosen:
        raise BadInput(
            "No session of this experiment is ready yet: upload videos and wait until their "
            "processing is done, then fit the model."
        )
    version = (
        db.scalar(
            select(func.max(SyllableModel.version)).where(
                SyllableModel.experiment_id == experiment.id
            )
        )
        or 0
    ) + 1
    model = SyllableModel(
        experiment_id=experiment.id,
        version=version,
        status=ModelStatus.training,
        states=states,
        settings={"states": states, "epochs": epochs},
        session_ids=chosen,
        training_curve=[],
    )
    db.add(model)
    db.flush()
    job = jobs.create(
        db,
        kind=JobKind.fit,
        queue=settings.gpu_queue if settings.fit_on_gpu_queue else settings.cpu_queue,
        max_attempts=settings.job_max_attempts,
        experiment_id=experiment.id,
        params={"model_id": model.id, "states": states, "epochs": epochs, "session_ids": chosen},
    )
    return model, job


def record_fit(
    db: Session,
    *,
    model_id: int,
    artifact_path: str,
    summary: FitSummary,
    curve: list[dict[str, Any]],
) -> SyllableModel:
    """Store a finished fit: freeze the model and create its syllables."""
    model = get_model_or_raise(db, model_id)
    model.status = ModelStatus.ready
    model.artifact_path = artifact_path
    model.states_used = summary.states_used
    model.median_duration_s = summary.median_duration_s
    # Read on every later upload: which sessions this model may segment without a refit.
    model.settings = {**(model.settings or {}), "crop_framing": summary.crop_framing}
    model.training_curve = curve
    model.fitted_at = utcnow()
    db.execute(delete(Syllable).where(Syllable.model_id == model.id))
    for k in range(model.states):
        db.add(Syllable(model_id=model.id, index=k, color=syllable_color(k)))
    db.flush()
    return model


def record_segmentation(
    db: Session,
    *,
    session_id: int,
    model_id: int,
    syllable: np.ndarray,
    probability: np.ndarray,
    bouts: Sequence[tuple[int, int, int]],
    transition_counts: np.ndarray,
    usage: np.ndarray,
    times: np.ndarray,
    fps: float,
) -> Segmentation:
    """Store one session's segmentation. Idempotent: a re-run replaces, never duplicates."""
    from model.ethogram import bout_end_times

    db.execute(
        delete(Segmentation).where(
            Segmentation.session_id == session_id, Segmentation.model_id == model_id
        )
    )
    segmentation = Segmentation(
        session_id=session_id,
        model_id=model_id,
        frame_count=len(syllable),
        probability=np.asarray(probability, dtype=np.float16).tobytes(),
        usage=[float(u) for u in usage],
        transition_counts=np.asarray(transition_counts, dtype=np.int64).tolist(),
    )
    db.add(segmentation)
    db.flush()
    if bouts:
        arr = np.asarray(bouts, dtype=np.int64)
        ends_s = bout_end_times(times, arr[:, 1], fps)
        db.execute(
            insert(Bout),
            [
                {
                    "segmentation_id": segmentation.id,
                    "start_frame": int(s),
                    "end_frame": int(e),
                    "syllable": int(k),
                    "start_s": float(times[s]),
                    "end_s": float(t1),
                }
                for (s, e, k), t1 in zip(arr, ends_s, strict=True)
            ],
        )
    return segmentation


def latest_segmentation(db: Session, session_id: int) -> Segmentation | None:
    """The session's segmentation by the newest model that has segmented it."""
    return db.scalar(
        select(Segmentation)
        .join(SyllableModel, SyllableModel.id == Segmentation.model_id)
        .where(Segmentation.session_id == session_id)
        .order_by(SyllableModel.version.desc())
        .limit(1)
    )


def segmentation_by(db: Session, session_id: int, model_id: int) -> Segmentation | None:
    """The session's segmentation by one model, if that model has segmented it."""
    return db.scalar(
        select(Segmentation).where(
            Segmentation.session_id == session_id, Segmentation.model_id == model_id
        )
    )


def session_bouts(db: Session, segmentation_id: int) -> np.ndarray:
    """(n_bouts, 3) int64 array of (start_frame, end_frame, syllable), in time order."""
    rows = db.execute(
        select(Bout.start_frame, Bout.end_frame, Bout.syllable)
        .where(Bout.segmentation_id == segmentation_id)
        .order_by(Bout.start_frame)
    ).all()
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def labels_from_bouts(bouts: np.ndarray, frame_count: int) -> np.ndarray:
    labels = np.full(frame_count, -1, dtype=np.int64)
    for s, e, k in bouts:
        labels[s:e] = k
    return labels


def probability_of(segmentation: Segmentation) -> np.ndarray:
    return np.frombuffer(segmentation.probability, dtype=np.float16).astype(np.float32)


def syllable_names(db: Session, model_id: int) -> dict[int, str]:
    rows = db.execute(
        select(Syllable.index, Syllable.name).where(Syllable.model_id == model_id)
    ).all()
    return {int(k): (name or f"syllable {k}") for k, name in rows}


def syllable_statistics(db: Session, model_id: int) -> dict[int, dict[str, Any]]:
    """Per syllable over all sessions the model segmented: usage (fraction of frames),
    bout count, median bout duration (s) and a sample of durations for histograms."""
    total = (
        db.scalar(
            select(func.sum(Segmentation.frame_count)).where(Segmentation.model_id == model_id)
        )
        or 0
    )
    rows = db.execute(
        select(Bout.syllable, Bout.end_frame - Bout.start_frame, Bout.end_s - Bout.start_s)
        .join(Segmentation, Segmentation.id == Bout.segmentation_id)
        .where(Segmentation.model_id == model_id)
    ).all()
    out: dict[int, dict[str, Any]] = {}
    if not rows:
        return out
    arr = np.asarray(rows, dtype=np.float64)
    for k in np.unique(arr[:, 0]).astype(int):
        mine = arr[arr[:, 0] == k]
        durations = mine[:, 2]
        sample = durations if len(durations) <= 2000 else durations[:: len(durations) // 2000]
        out[int(k)] = {
            "usage": float(mine[:, 1].sum() / total) if total else 0.0,
            "bout_count": len(mine),
            "median_duration_s": float(np.median(durations)),
            "durations_s": [round(float(d), 4) for d in sample],
        }
    return out


def transition_matrix(db: Session, model_id: int, states: int) -> list[list[float]]:
    """Bout-to-bout transition probabilities (rows: from), summed over sessions."""
    counts = np.zeros((states, states))
    for (tc,) in db.execute(
        select(Segmentation.transition_counts).where(Segmentation.model_id == model_id)
    ):
        arr = np.asarray(tc, dtype=np.float64)
        counts[: arr.shape[0], : arr.shape[1]] += arr
    rows = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    return [[round(float(v), 5) for v in row] for row in probs]


def update_syllable(
    db: Session, syllable: Syllable, *, name: str | None, description: str | None
) -> Syllable:
    if name is not None:
        syllable.name = name.strip()[:200]
    if description is not None:
        syllable.description = description.strip()[:10_000]
    return syllable


def pending_segment_jobs(db: Session, model_id: int) -> int:
    count = 0
    for job in db.scalars(
        select(Job).where(
            Job.kind == JobKind.segment,
            Job.status.in_([JobStatus.queued, JobStatus.running]),
        )
    ):
        if (job.params or {}).get("model_id") == model_id:
            count += 1
    return count


def fit_job_of(db: Session, model: SyllableModel) -> Job | None:
    for job in db.scalars(
        select(Job)
        .where(Job.kind == JobKind.fit, Job.experiment_id == model.experiment_id)
        .order_by(Job.id.desc())
    ):
        if (job.params or {}).get("model_id") == model.id:
            return job
    return None


def model_status(db: Session, model: SyllableModel) -> ModelStatus:
    """``training``, ``ready`` or ``failed`` (a fit job that gave up means failed)."""
    if model.status == ModelStatus.training:
        job = fit_job_of(db, model)
        if job is not None and job.status == JobStatus.failed:
            return ModelStatus.failed
    return ModelStatus(model.status)


def downsample(values: np.ndarray, max_points: int) -> np.ndarray:
    """Every n-th value (n chosen so at most ``max_points`` remain); NaN becomes 0."""
    step = max(1, int(np.ceil(len(values) / max_points)))
    return np.nan_to_num(np.asarray(values[::step], dtype=np.float64))
