"""Experiments, cohorts, subjects and sessions: plain functions over a database session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.core.db import utcnow
from app.core.errors import BadInput, NotFound
from app.core.storage import StoredFile
from app.experiments.models import Cohort, Experiment, Subject, VideoSession
from app.jobs.models import JobStatus


def create_experiment(
    db: Session, *, name: str, group_id: int, description: str = ""
) -> Experiment:
    name = name.strip()
    if not name:
        raise BadInput("An experiment needs a name.")
    experiment = Experiment(name=name, description=description, group_id=group_id)
    db.add(experiment)
    db.flush()
    return experiment


def list_experiments(db: Session, *, group_ids: list[int]) -> list[Experiment]:
    """The experiments of these lab groups, newest first."""
    query = select(Experiment).where(Experiment.group_id.in_(group_ids))
    return list(db.scalars(query.order_by(Experiment.id.desc())))


def get_experiment_or_raise(db: Session, experiment_id: int) -> Experiment:
    experiment = db.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"Experiment {experiment_id} does not exist.")
    return experiment


def get_session_or_raise(db: Session, session_id: int) -> VideoSession:
    # The jobs come in the same statement as the session: loaded lazily afterwards, they could
    # show a job that finished after the session's columns were read, i.e. "ready" without the
    # results that job wrote (each statement reads the latest commit, on SQLite and on
    # PostgreSQL's read committed alike).
    session = db.get(VideoSession, session_id, options=[joinedload(VideoSession.jobs)])
    if session is None:
        raise NotFound(f"Session {session_id} does not exist.")
    return session


def get_or_create_cohort(db: Session, *, experiment: Experiment, name: str) -> Cohort:
    name = name.strip()
    cohort = db.scalar(
        select(Cohort).where(Cohort.experiment_id == experiment.id, Cohort.name == name)
    )
    if cohort is None:
        cohort = Cohort(experiment_id=experiment.id, name=name)
        db.add(cohort)
        db.flush()
    return cohort


def get_or_create_subject(
    db: Session, *, experiment: Experiment, name: str, cohort: Cohort | None
) -> Subject:
    name = name.strip()
    subject = db.scalar(
        select(Subject).where(Subject.experiment_id == experiment.id, Subject.name == name)
    )
    if subject is None:
        subject = Subject(experiment_id=experiment.id, name=name, cohort=cohort)
        db.add(subject)
        db.flush()
    elif cohort is not None and subject.cohort_id not in (None, cohort.id):
        current = subject.cohort.name if subject.cohort else "?"
        raise BadInput(
            f"Subject {name!r} is already in cohort {current!r}; an animal belongs to one "
            f"cohort. Use another subject name or move the subject first."
        )
    elif cohort is not None:
        subject.cohort = cohort
    return subject


def create_session(
    db: Session,
    *,
    experiment: Experiment,
    stored: StoredFile,
    filename: str,
    subject_name: str | None,
    cohort_name: str | None,
) -> VideoSession:
    """Record an uploaded video as a session (its processing is queued by the job chain)."""
    cohort = (
        get_or_create_cohort(db, experiment=experiment, name=cohort_name)
        if cohort_name and cohort_name.strip()
        else None
    )
    subject = (
        get_or_create_subject(db, experiment=experiment, name=subject_name, cohort=cohort)
        if subject_name and subject_name.strip()
        else None
    )
    if subject is None and cohort is not None:
        raise BadInput("A cohort was given without a subject; say which animal this video shows.")
    session = VideoSession(
        experiment_id=experiment.id,
        subject=subject,
        original_filename=filename[:500],
        original_path=stored.path,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
    )
    db.add(session)
    db.flush()
    return session


# A session a model cannot learn one mouse's behaviour from: no animal in most frames, or
# another animal (or an animal-sized object) in a fifth of them. Left out of fits by default.
FIT_MAX_NO_MOUSE = 0.5
FIT_MAX_SEVERAL_BLOBS = 0.2


def fit_problem(quality: dict[str, Any] | None) -> str | None:
    """Why a preprocessed session should stay out of a fit, in words; None when it can go in."""
    q = quality or {}
    no_mouse = float(q.get("fraction_no_mouse") or 0.0)
    several = float(q.get("fraction_several_blobs") or 0.0)
    if no_mouse > FIT_MAX_NO_MOUSE:
        return (
            f"no mouse was found in {no_mouse:.0%} of its frames: a model cannot learn "
            "behaviour from it (is the animal in view, and the video the right one?)"
        )
    if several > FIT_MAX_SEVERAL_BLOBS:
        return (
            f"more than one animal (or an animal-sized object) is in view in {several:.0%} of "
            "its frames: Syllabary segments one mouse per video"
        )
    return None


def session_status(session: VideoSession) -> str:
    """``queued``, ``processing``, ``ready`` or ``failed``, from the session's jobs."""
    if not session.jobs:
        return "queued"
    statuses = {job.status for job in session.jobs}
    if JobStatus.failed in statuses:
        return "failed"
    if JobStatus.running in statuses:
        return "processing"
    if JobStatus.queued in statuses:
        return "processing" if JobStatus.succeeded in statuses else "queued"
    return "ready"


def apply_probe(db: Session, *, session_id: int, info: dict[str, Any]) -> VideoSession:
    """Store probe results on the session (idempotent: running it twice changes nothing)."""
    session = get_session_or_raise(db, session_id)
    session.frame_count = int(info["frame_count"])
    session.fps = float(info["fps"])
    session.duration_s = float(info["duration_s"])
    session.width = int(info["width"])
    session.height = int(info["height"])
    session.codec = str(info["codec"])
    session.pix_fmt = str(info["pix_fmt"])
    session.probe = dict(info)
    session.probed_at = utcnow()
    return session


def session_counts(db: Session) -> dict[int, int]:
    """Number of sessions per experiment id, in one query."""
    rows = db.execute(
        select(VideoSession.experiment_id, func.count()).group_by(VideoSession.experiment_id)
    ).all()
    return {int(eid): int(n) for eid, n in rows}


def list_cohorts(db: Session, experiment_id: int) -> list[Cohort]:
    return list(
        db.scalars(
            select(Cohort).where(Cohort.experiment_id == experiment_id).order_by(Cohort.name)
        )
    )


def list_subjects(db: Session, experiment_id: int) -> list[Subject]:
    return list(
        db.scalars(
            select(Subject).where(Subject.experiment_id == experiment_id).order_by(Subject.name)
        )
    )


def get_subject_or_raise(db: Session, subject_id: int) -> Subject:
    subject = db.get(Subject, subject_id)
    if subject is None:
        raise NotFound(f"Subject {subject_id} does not exist.")
    return subject


def update_experiment(
    db: Session,
    experiment: Experiment,
    *,
    name: str | None,
    description: str | None,
    px_per_cm: float | None = None,
    clear_px_per_cm: bool = False,
) -> Experiment:
    if clear_px_per_cm:
        experiment.px_per_cm = None
    elif px_per_cm is not None:
        experiment.px_per_cm = px_per_cm
    if name is not None:
        if not name.strip():
            raise BadInput("An experiment needs a name.")
        experiment.name = name.strip()
    if description is not None:
        experiment.description = description
    return experiment


def update_subject(
    db: Session, subject: Subject, *, cohort_name: str | None, **fields: Any
) -> Subject:
    """Change a subject's metadata; ``cohort_name`` moves it (created if new; "" removes it)."""
    experiment = subject.experiment
    if cohort_name is not None:
        subject.cohort = (
            get_or_create_cohort(db, experiment=experiment, name=cohort_name)
            if cohort_name.strip()
            else None
        )
    for key in ("name", "sex", "age", "genotype", "notes"):
        value = fields.get(key)
        if value is not None:
            setattr(subject, key, value.strip())
    return subject


def update_session(
    db: Session,
    session: VideoSession,
    *,
    subject_name: str | None,
    cohort_name: str | None,
    recorded_on: Any = None,
    notes: str | None = None,
    px_per_cm: float | None = None,
    clear_px_per_cm: bool = False,
) -> VideoSession:
    """Assign a session to a subject (and the subject to a cohort), or edit its notes."""
    experiment = session.experiment
    if subject_name is not None:
        cohort = (
            get_or_create_cohort(db, experiment=experiment, name=cohort_name)
            if cohort_name and cohort_name.strip()
            else None
        )
        session.subject = (
            get_or_create_subject(db, experiment=experiment, name=subject_name, cohort=cohort)
            if subject_name.strip()
            else None
        )
    elif cohort_name is not None and session.subject is not None:
        update_subject(db, session.subject, cohort_name=cohort_name)
    if recorded_on is not None:
        session.recorded_on = recorded_on
    if notes is not None:
        session.notes = notes
    if clear_px_per_cm:
        session.px_per_cm = None
    elif px_per_cm is not None:
        session.px_per_cm = px_per_cm
    return session


def assign_from_csv(db: Session, experiment: Experiment, text: str) -> dict[str, Any]:
    """Apply a ``filename,subject,cohort`` CSV to the experiment's sessions by file name.

    Returns what was assigned and which rows matched no session, so the user can fix them.
    """
    import csv
    import io

    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows = [r for r in reader if any(cell.strip() for cell in r)]
    if rows and [c.strip().lower() for c in rows[0][:3]] == ["filename", "subject", "cohort"]:
        rows = rows[1:]
    by_name: dict[str, list[VideoSession]] = {}
    for session in experiment.sessions:
        by_name.setdefault(session.original_filename, []).append(session)
    assigned, unmatched = 0, []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise BadInput(f"Row {number} needs at least filename and subject: {row}.")
        filename, subject = row[0].strip(), row[1].strip()
        cohort = row[2].strip() if len(row) > 2 else ""
        matches = by_name.get(filename, [])
        if not matches:
            unmatched.append(filename)
            continue
        for session in matches:
            update_session(db, session, subject_name=subject, cohort_name=cohort)
            assigned += 1
    return {"assigned": assigned, "unmatched": unmatched}
