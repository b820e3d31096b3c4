"""A lab's own labels: stored as uploaded, read into one behaviour per frame, and compared
with the syllables of one model (per session, or pooled over an experiment per rater)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.core.errors import BadInput, NotFound, TooLarge
from app.core.storage import Storage
from app.experiments.models import VideoSession
from app.syllables import groupings
from app.syllables import service as syllables
from app.syllables.models import SyllableModel
from model.agreement import Agreement, AnnotationError, agreement, parse_annotations

MAX_BYTES = 20 * 1024 * 1024
# A boundary a person placed counts as found when a syllable changes within this much time:
# about the reaction time of a person scoring video at full speed.
BOUNDARY_TOLERANCE_S = 0.2


def frame_times(storage: Storage, session: VideoSession) -> np.ndarray:
    """Each frame's time in seconds: from preprocessing when done (the times the ethogram
    exports), else from the probe's frame rate."""
    if session.features_path:
        from model.features import load

        return np.asarray(load(storage.local(session.features_path)).times, dtype=np.float64)
    if session.frame_count and session.fps:
        return np.arange(session.frame_count, dtype=np.float64) / session.fps
    raise BadInput(
        f"Session {session.id} is still being read: upload its labels once the session page "
        "shows its frame count."
    )


def add_annotation(
    db: Session,
    storage: Storage,
    session: VideoSession,
    *,
    filename: str,
    data: bytes,
    rater: str = "",
) -> Annotation:
    """Read a label file and store it beside the session; a file that cannot be read is
    refused with its line and column, and nothing is stored."""
    if len(data) > MAX_BYTES:
        raise TooLarge(f"{filename} is larger than {MAX_BYTES // 2**20} MB; split it by session.")
    try:
        read = parse_annotations(data, times=frame_times(storage, session))
    except AnnotationError as exc:
        raise BadInput(f"{filename}: {exc}") from exc
    annotation = Annotation(
        session_id=session.id,
        rater=rater.strip()[:200],
        filename=filename[:500],
        format=read.format,
        behaviours=read.behaviours,
        labels=read.labels.astype(np.int16).tobytes(),
        frame_count=len(read.labels),
        scored_frames=read.scored_frames,
        notes=read.notes,
        source=data,
    )
    db.add(annotation)
    db.flush()
    return annotation


def list_annotations(db: Session, session_id: int) -> list[Annotation]:
    return list(
        db.scalars(
            select(Annotation).where(Annotation.session_id == session_id).order_by(Annotation.id)
        )
    )


def get_annotation_or_raise(db: Session, annotation_id: int) -> Annotation:
    annotation = db.get(Annotation, annotation_id)
    if annotation is None:
        raise NotFound(f"Annotation {annotation_id} does not exist.")
    return annotation


def labels_of(annotation: Annotation) -> np.ndarray:
    return np.frombuffer(annotation.labels, dtype=np.int16).astype(np.int64)


def tolerance_frames(fps: float) -> int:
    return max(1, round(BOUNDARY_TOLERANCE_S * fps))


@dataclass(frozen=True)
class AgreementResult:
    """An agreement and what it was computed on."""

    model: SyllableModel
    rater: str
    session_ids: list[int]
    annotation_ids: list[int]
    fps: float
    names: dict[int, str]  # syllable index -> its name
    agreement: Agreement


def _model_of(db: Session, experiment_id: int, model_id: int | None) -> SyllableModel:
    if model_id is None:
        model = syllables.latest_ready_model(db, experiment_id)
        if model is None:
            raise NotFound(
                "No model of this experiment is ready: fit one, then compare its syllables "
                "with your labels."
            )
        return model
    model = syllables.get_model_or_raise(db, model_id)
    if model.experiment_id != experiment_id:
        raise NotFound(f"Model {model_id} is not a model of this experiment.")
    return model


def _syllables_of(db: Session, session_id: int, model: SyllableModel) -> np.ndarray | None:
    segmentation = syllables.segmentation_by(db, session_id, model.id)
    if segmentation is None:
        return None
    bouts = syllables.session_bouts(db, segmentation.id)
    labels = syllables.labels_from_bouts(bouts, segmentation.frame_count)
    return groupings.group_labels(labels, groupings.current(db, model.id), model.states)


def _pair(syllable: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Probe and decoder can disagree by a frame at the end of a file; compare what both have.
    n = min(len(syllable), len(labels))
    return syllable[:n], labels[:n]


def session_agreement(
    db: Session, annotation: Annotation, model_id: int | None = None
) -> AgreementResult:
    """One label file against the syllables of a model (default: the newest ready one)."""
    session = db.get(VideoSession, annotation.session_id)
    assert session is not None
    model = _model_of(db, session.experiment_id, model_id)
    syllable = _syllables_of(db, session.id, model)
    if syllable is None:
        raise NotFound(
            f"Session {session.id} has not been segmented by model v{model.version} yet: wait "
            "for its segmentation, then look again."
        )
    fps = session.fps or 30.0
    try:
        result = agreement(
            [_pair(syllable, labels_of(annotation))],
            annotation.behaviours,
            tolerance=tolerance_frames(fps),
        )
    except ValueError as exc:
        raise BadInput(f"{annotation.filename}: {exc}") from exc
    return AgreementResult(
        model=model,
        rater=annotation.rater,
        session_ids=[session.id],
        annotation_ids=[annotation.id],
        fps=fps,
        names=groupings.unit_names(
            syllables.syllable_names(db, model.id), groupings.current(db, model.id)
        ),
        agreement=result,
    )


def experiment_agreement(
    db: Session, experiment_id: int, model_id: int | None = None
) -> list[AgreementResult]:
    """Per rater, every labelled session the model has segmented, pooled: behaviours are
    matched by name across files, and a rater's newest file of a session is the one counted.
    Raters are kept apart (files without a rater form one group), so two people's labels of
    the same session are two comparisons, never one double-counted table. Without a ready
    model there is nothing to compare yet: an empty list."""
    if model_id is None and syllables.latest_ready_model(db, experiment_id) is None:
        return []
    model = _model_of(db, experiment_id, model_id)
    rows = db.execute(
        select(Annotation, VideoSession)
        .join(VideoSession, VideoSession.id == Annotation.session_id)
        .where(VideoSession.experiment_id == experiment_id)
        .order_by(Annotation.id)
    ).all()
    # A rater's newest file of a session replaces their earlier ones (a corrected upload).
    newest: dict[tuple[str, int], tuple[Annotation, VideoSession]] = {}
    for annotation, session in rows:
        newest[(annotation.rater, session.id)] = (annotation, session)
    by_rater: dict[str, list[tuple[Annotation, VideoSession]]] = defaultdict(list)
    for annotation, session in newest.values():
        by_rater[annotation.rater].append((annotation, session))
    results = []
    for rater, items in sorted(by_rater.items()):
        names: list[str] = []
        pairs, used, sessions, rates = [], [], [], []
        for annotation, session in items:
            syllable = _syllables_of(db, session.id, model)
            if syllable is None:
                continue
            index = {}
            for name in annotation.behaviours:
                if name not in names:
                    names.append(name)
                index[annotation.behaviours.index(name)] = names.index(name)
            own = labels_of(annotation)
            pooled = np.array([index.get(int(k), -1) for k in range(len(annotation.behaviours))])
            labels = np.where(own >= 0, pooled[np.clip(own, 0, None)], -1)
            pairs.append(_pair(syllable, labels))
            used.append(annotation.id)
            sessions.append(session.id)
            rates.append(session.fps or 30.0)
        if not pairs:
            continue
        fps = float(np.median(rates))
        try:
            result = agreement(pairs, names, tolerance=tolerance_frames(fps))
        except ValueError:
            continue  # nothing scored overlaps a segmentation yet
        results.append(
            AgreementResult(
                model=model,
                rater=rater,
                session_ids=sorted(set(sessions)),
                annotation_ids=used,
                fps=fps,
                names=groupings.unit_names(
                    syllables.syllable_names(db, model.id), groupings.current(db, model.id)
                ),
                agreement=result,
            )
        )
    return results
