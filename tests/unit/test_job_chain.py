"""What finished jobs store and queue next, on a real (SQLite) database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import make_engine, session_factory
from app.core.migrate import upgrade
from app.jobs import pipeline
from app.jobs import service as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.syllables import service as syllables
from tests import factories


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    jobs.set_sender(lambda job_id, queue, countdown: None)
    url = f"sqlite:///{tmp_path / 'chain.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()
    jobs.set_sender(jobs._default_sender)


def test_a_fit_stores_its_median_bout_duration(db: Session) -> None:
    """The model page's "median bout" comes from the fit's own summary (it once read a key the
    fit never wrote, and always showed "–")."""
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(300, states=2, latent_dim=2, seed=1)
    settings = TrainSettings(hidden=16, steps_a=10, steps_c=3, batch=4, min_states=2,
                             pretrain_passes=0.0, min_bout_s=0.0)  # fmt: skip
    fitted = fit_model([np.clip(syn.frames, 0, 1)], None, states=2, latent_dim=2,
                       settings=settings, fps=30.0)  # fmt: skip
    experiment = factories.experiment(db)
    model = factories.syllable_model(db, experiment.id, states=2, status="training")
    factories.video_session(db, experiment.id)
    queued = syllables.record_fit(
        db, model_id=model.id, artifact_path="models/1", summary=fitted.fit_summary,
        curve=[], settings=Settings(),
    )  # fmt: skip
    db.commit()
    db.refresh(model)
    assert model.status == "ready" and len(queued) == 1
    assert model.states_used == fitted.summary["states_used"]
    assert model.median_duration_s is not None and model.median_duration_s > 0
    assert model.median_duration_s == pytest.approx(fitted.summary["median_duration_ms"] / 1000)


def test_fit_summary_names_what_a_fit_did_not_report() -> None:
    from model.summary import FitSummary

    with pytest.raises(ValueError, match="median_duration_ms"):
        FitSummary.from_dict({"states_used": 3, "frames": 10, "fit_seconds": 1.0})


def _segment_jobs(db: Session, model_id: int, n: int) -> list[Job]:
    out = [
        jobs.create(db, kind=JobKind.segment, queue="cpu", max_attempts=3,
                    params={"model_id": model_id})  # fmt: skip
        for _ in range(n)
    ]
    db.commit()
    return out


def _finish(db: Session, job: Job, model_id: int) -> None:
    """As the runner does: the job is marked succeeded, then its writer runs, one transaction."""
    job.status = JobStatus.succeeded
    pipeline.after_segment(db, model_id=model_id, settings=Settings())
    db.commit()


def _clips_jobs(db: Session) -> int:
    return int(db.scalar(select(func.count(Job.id)).where(Job.kind == JobKind.clips)) or 0)


@pytest.mark.parametrize("sessions", [1, 2, 3])
def test_clips_are_queued_once_after_the_last_segmentation(db: Session, sessions: int) -> None:
    experiment = factories.experiment(db)
    model = factories.syllable_model(db, experiment.id)
    queued = _segment_jobs(db, model.id, sessions)
    for i, job in enumerate(queued):
        _finish(db, job, model.id)
        # None before the last one is stored (the clips would miss sessions), one after it.
        assert _clips_jobs(db) == (1 if i == sessions - 1 else 0)


def test_a_later_segmentation_queues_clips_again_unless_some_are_waiting(db: Session) -> None:
    experiment = factories.experiment(db)
    model = factories.syllable_model(db, experiment.id)
    (first,) = _segment_jobs(db, model.id, 1)
    _finish(db, first, model.id)
    assert _clips_jobs(db) == 1
    # A later upload, segmented while the clips job is still waiting: that job will see it.
    (later,) = _segment_jobs(db, model.id, 1)
    _finish(db, later, model.id)
    assert _clips_jobs(db) == 1
    # Once the clips have been rendered, a new session's segmentation renders them again.
    clips = db.scalars(select(Job).where(Job.kind == JobKind.clips)).one()
    clips.status = JobStatus.succeeded
    db.commit()
    (newest,) = _segment_jobs(db, model.id, 1)
    _finish(db, newest, model.id)
    assert _clips_jobs(db) == 2


def test_segment_jobs_of_another_model_do_not_hold_the_clips_back(db: Session) -> None:
    experiment = factories.experiment(db)
    first = factories.syllable_model(db, experiment.id)
    second = factories.syllable_model(db, experiment.id, version=2)
    _segment_jobs(db, second.id, 2)  # still waiting
    (mine,) = _segment_jobs(db, first.id, 1)
    _finish(db, mine, first.id)
    assert _clips_jobs(db) == 1
