"""Exports: per-session ethogram and bouts CSV, and a ZIP of a whole experiment, streamed."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.storage import Storage
from app.experiments.models import Experiment, VideoSession
from app.syllables import groupings
from app.syllables import service as syllables


class _Pipe(io.RawIOBase):
    """A write-only, unseekable buffer that a generator drains: lets zipfile stream."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


def _segmented(
    db: Session, session: VideoSession, model_id: int | None = None
) -> tuple[Any, np.ndarray, dict[int, str]]:
    if model_id is None:
        segmentation = syllables.latest_segmentation(db, session.id)
    else:
        segmentation = syllables.segmentation_by(db, session.id, model_id)
    if segmentation is None:
        raise NotFound(
            f"Session {session.id} has not been segmented yet: fit a model on its experiment "
            "(or wait for segmentation to finish)."
        )
    # As the lab grouped the model's syllables (a group under its smallest syllable's index).
    model = syllables.get_model_or_raise(db, segmentation.model_id)
    grouping = groupings.current(db, model.id)
    bouts = groupings.group_bouts(
        syllables.session_bouts(db, segmentation.id), grouping, model.states
    )
    names = groupings.unit_names(syllables.syllable_names(db, model.id), grouping)
    return segmentation, bouts, names


def _with_features(
    db: Session, storage: Storage, session: VideoSession, model_id: int | None
) -> tuple[Any, np.ndarray, dict[int, str], Any]:
    """The session's segmentation, bouts and names (:func:`_segmented`) and its features."""
    from model.features import load

    segmentation, bouts, names = _segmented(db, session, model_id)
    if not session.features_path:
        raise NotFound(f"Session {session.id} has no preprocessing results.")
    return segmentation, bouts, names, load(storage.local(session.features_path))


def ethogram_csv(
    db: Session, storage: Storage, session: VideoSession, model_id: int | None = None
) -> Iterator[str]:
    """The ethogram CSV of a session, one row per frame (architecture.md's columns), by the
    given model, else by the newest model that segmented it."""
    from model.ethogram import ethogram_chunks

    segmentation, bouts, names, features = _with_features(db, storage, session, model_id)
    labels = syllables.labels_from_bouts(bouts, segmentation.frame_count)
    quality = [features.quality_names[q] for q in np.asarray(features.quality)]
    return ethogram_chunks(
        syllable=labels,
        probability=syllables.probability_of(segmentation),
        times=np.asarray(features.times),
        names=names,
        scalars={k: np.asarray(v) for k, v in features.scalars.items()},
        quality=quality,
    )


def bouts_csv(
    db: Session, storage: Storage, session: VideoSession, model_id: int | None = None
) -> Iterator[str]:
    from model.ethogram import bouts_chunks

    _segmentation, bouts, names, features = _with_features(db, storage, session, model_id)
    return bouts_chunks(
        bouts=[tuple(int(v) for v in row) for row in bouts],  # type: ignore[misc]
        times=np.asarray(features.times),
        fps=features.fps,
        names=names,
    )


def boris_csv(
    db: Session, storage: Storage, session: VideoSession, model_id: int | None = None
) -> Iterator[str]:
    """The bouts as BORIS tabular events (behaviour = syllable name, subject = the animal)."""
    from model.ethogram import boris_chunks

    segmentation, bouts, names, features = _with_features(db, storage, session, model_id)
    model = syllables.get_model_or_raise(db, segmentation.model_id)
    return boris_chunks(
        bouts=[tuple(int(v) for v in row) for row in bouts],  # type: ignore[misc]
        times=np.asarray(features.times),
        fps=features.fps,
        names=names,
        observation=f"syllabary session {session.id} model v{model.version}",
        media=session.original_filename,
        subject=session.subject.name if session.subject else "",
        date=session.recorded_on.isoformat() if session.recorded_on else "",
    )


def session_nwb(
    db: Session, storage: Storage, session: VideoSession, path: Path, model_id: int | None = None
) -> None:
    """Write the session as an NWB file at ``path`` (layout in :mod:`app.exports.nwb`)."""
    from app.exports.nwb import SessionRecord, write_session_nwb
    from model.ethogram import bout_end_times

    segmentation, bouts, names, features = _with_features(db, storage, session, model_id)
    times = np.asarray(features.times, dtype=np.float64)
    n = min(len(times), segmentation.frame_count)
    model = syllables.get_model_or_raise(db, segmentation.model_id)
    subject = session.subject
    experiment = db.get(Experiment, session.experiment_id)
    scalars = {k: np.asarray(v, dtype=np.float64)[:n] for k, v in features.scalars.items()}
    # Bouts within the frames both the segmentation and the tracking have.
    kept = bouts[bouts[:, 0] < n].copy()
    kept[:, 1] = np.minimum(kept[:, 1], n)
    record = SessionRecord(
        session_id=session.id,
        filename=session.original_filename,
        experiment=experiment.name if experiment else "",
        model_version=model.version,
        recorded_on=session.recorded_on,
        created_at=session.created_at,
        subject=subject.name if subject else "",
        cohort=subject.cohort.name if subject and subject.cohort else "",
        sex=subject.sex if subject else "",
        age=subject.age if subject else "",
        genotype=subject.genotype if subject else "",
        times=times[:n],
        x=scalars.get("x", np.full(n, np.nan)),
        y=scalars.get("y", np.full(n, np.nan)),
        heading=scalars.get("heading", np.full(n, np.nan)),
        syllable=syllables.labels_from_bouts(bouts, segmentation.frame_count)[:n],
        bouts=kept,
        bout_ends_s=bout_end_times(times[:n], kept[:, 1], features.fps),
        names=names,
    )
    write_session_nwb(record, path)


def _csv_text(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def sessions_table(experiment: Experiment) -> str:
    rows: list[list[Any]] = [
        [
            "session_id",
            "file",
            "subject",
            "cohort",
            "sex",
            "age",
            "genotype",
            "recorded_on",
            "frames",
            "fps",
            "duration_s",
            "fraction_no_mouse",
        ]
    ]
    for s in experiment.sessions:
        subject = s.subject
        rows.append(
            [
                s.id,
                s.original_filename,
                subject.name if subject else "",
                subject.cohort.name if subject and subject.cohort else "",
                subject.sex if subject else "",
                subject.age if subject else "",
                subject.genotype if subject else "",
                s.recorded_on or "",
                s.frame_count or "",
                s.fps or "",
                s.duration_s or "",
                (s.quality or {}).get("fraction_no_mouse", ""),
            ]
        )
    return _csv_text(rows)


def experiment_zip(db: Session, storage: Storage, experiment: Experiment) -> Iterator[bytes]:
    """A ZIP of the experiment by its newest ready model: the sessions table with subject and
    cohort metadata, the model's syllable table and transition matrix, the CSVs of every
    session that model has segmented, and the lab's own label files with their agreement with
    that model (annotations/, agreement.json). One model only: during a refit, sessions the new
    model has not reached yet are listed in model.json, never exported with the old model's
    ids."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sessions.csv", sessions_table(experiment))
        yield pipe.drain()
        model = syllables.latest_ready_model(db, experiment.id)
        segmented = (
            []
            if model is None
            else [
                s
                for s in experiment.sessions
                if syllables.segmentation_by(db, s.id, model.id) is not None
            ]
        )
        if model is not None:
            stats = syllables.syllable_statistics(db, model.id)
            grouping = groupings.current(db, model.id)
            groups = grouping.groups if grouping else []
            group_of = {k: name for name, members in groups for k in members}
            table: list[list[Any]] = [
                ["syllable", "name", "description", "usage", "bouts", "median_duration_s", "group"]
            ]
            for s in model.syllables:
                st = stats.get(s.index, {})
                table.append(
                    [
                        s.index,
                        s.label,
                        s.description,
                        round(st.get("usage", 0.0), 6),
                        st.get("bout_count", 0),
                        st.get("median_duration_s", ""),
                        group_of.get(s.index, ""),
                    ]
                )
            zf.writestr("syllables.csv", _csv_text(table))
            matrix = syllables.transition_matrix(db, model.id, model.states)
            header = ["from \\ to", *[str(k) for k in range(model.states)]]
            zf.writestr(
                "transition_matrix.csv",
                _csv_text([header, *[[k, *row] for k, row in enumerate(matrix)]]),
            )
            zf.writestr(
                "model.json",
                json.dumps(
                    {
                        "version": model.version,
                        "states": model.states,
                        "id": model.id,
                        # Session CSVs show each group under its smallest syllable's index.
                        "grouping": None
                        if grouping is None
                        else {
                            "version": grouping.version,
                            "groups": [
                                {"name": n, "syllables": members} for n, members in grouping.groups
                            ],
                        },
                        "sessions_segmented": [s.id for s in segmented],
                        "sessions_not_yet_segmented": sorted(
                            {s.id for s in experiment.sessions} - {s.id for s in segmented}
                        ),
                    },
                    indent=2,
                ),
            )
            yield pipe.drain()
        for session in segmented:
            assert model is not None
            stem = f"session_{session.id}_{_safe(session.original_filename)}"
            for name, chunks in (
                (f"{stem}.ethogram.csv", ethogram_csv(db, storage, session, model.id)),
                (f"{stem}.bouts.csv", bouts_csv(db, storage, session, model.id)),
            ):
                with zf.open(f"sessions/{name}", mode="w") as member:
                    for chunk in chunks:
                        member.write(chunk.encode())
                        if len(pipe.chunks) > 16:
                            yield pipe.drain()
                yield pipe.drain()
        _write_annotations(db, zf, experiment, model)
    yield pipe.drain()


def _write_annotations(
    db: Session, zf: zipfile.ZipFile, experiment: Experiment, model: Any | None
) -> None:
    """The lab's own label files as uploaded, and their agreement with the exported model."""
    from app.annotations import service as annotations

    any_labels = False
    for session in experiment.sessions:
        for a in annotations.list_annotations(db, session.id):
            any_labels = True
            rater = f"_{_safe(a.rater)}" if a.rater else ""
            zf.writestr(f"annotations/session_{session.id}{rater}_{a.id}_{a.filename}", a.source)
    if model is None or not any_labels:
        return
    results = annotations.experiment_agreement(db, experiment.id, model.id)
    zf.writestr(
        "agreement.json",
        json.dumps(
            [
                {
                    "rater": r.rater,
                    "model_version": model.version,
                    "sessions": r.session_ids,
                    "frames": r.agreement.frames,
                    "nmi": r.agreement.nmi,
                    "ari": r.agreement.ari,
                    "accuracy": r.agreement.accuracy,
                    "f1": r.agreement.f1,
                    "boundary_agreement": r.agreement.boundary_agreement,
                    "boundary_chance": r.agreement.boundary_chance,
                    "boundary_tolerance_frames": r.agreement.boundary_tolerance,
                    "mapping": {str(k): v for k, v in r.agreement.mapping.items()},
                    "syllables": r.agreement.syllables,
                    "behaviours": r.agreement.behaviours,
                    "contingency": r.agreement.contingency.tolist(),
                }
                for r in results
            ],
            indent=2,
        ),
    )


def _safe(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80] or "video"
