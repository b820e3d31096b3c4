"""What finished jobs store and queue next, on a real (SQLite) database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.jobs import pipeline
from app.jobs import service as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.syllables import service as syllables
from app.syllables.models import SyllableModel
from model.preprocess import CROP_FRAMING
from tests import factories


@pytest.fixture(autouse=True)
def _no_broker() -> Iterator[None]:
    jobs.set_sender(lambda job_id, queue, countdown: None)
    yield
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
    syllables.record_fit(db, model_id=model.id, artifact_path="models/1",
                         summary=fitted.fit_summary, curve=[])  # fmt: skip
    db.commit()
    db.refresh(model)
    assert model.status == "ready" and len(model.syllables) == 2
    assert model.states_used == fitted.summary["states_used"]
    assert model.median_duration_s is not None and model.median_duration_s > 0
    assert model.median_duration_s == pytest.approx(fitted.summary["median_duration_ms"] / 1000)


def test_fit_summary_names_what_a_fit_did_not_report() -> None:
    from model.summary import FitSummary

    with pytest.raises(ValueError, match="median_duration_ms"):
        FitSummary.from_dict({"states_used": 3, "frames": 10, "fit_seconds": 1.0})


def _queued(db: Session) -> list[tuple[str, int | None, int | None]]:
    """(kind, session, model) of every queued job."""
    return sorted(
        (j.kind, j.session_id, (j.params or {}).get("model_id"))
        for j in db.scalars(select(Job).where(Job.status == JobStatus.queued))
    )


def _ready(db: Session, experiment_id: int, framing: int | None) -> int:
    model = factories.syllable_model(db, experiment_id)
    if framing is not None:
        model.settings = {**model.settings, "crop_framing": framing}
    return model.id


@pytest.mark.parametrize(
    ("finished", "ready_model_framing", "expected"),
    [
        # A new upload is probed, a probed one ingested.
        ("upload", None, [("probe", "s1", None)]),
        ("probe", None, [("ingest", "s1", None)]),
        # An ingested upload waits for a fit when there is no model yet ...
        ("ingest", None, []),
        # ... is segmented with the frozen model when its crops are framed as the model's ...
        ("ingest", CROP_FRAMING, [("segment", "s1", "m")]),
        # ... and waits for the next fit when the model saw crops framed otherwise.
        ("ingest", CROP_FRAMING - 1, []),
        # A fit segments every ingested session (s2 is still being ingested).
        ("fit", CROP_FRAMING, [("segment", "s1", "m"), ("segment", "s3", "m")]),
        # The last segmentation of a model queues its example clips.
        ("segment", CROP_FRAMING, [("clips", None, "m")]),
    ],
)
def test_the_job_chain(db: Session, tmp_path: Path, finished: str,
                       ready_model_framing: int | None, expected: list) -> None:  # fmt: skip
    from app.core.storage import Storage

    settings, storage = Settings(), Storage(tmp_path)
    experiment = factories.experiment(db)
    s1 = factories.video_session(db, experiment.id)
    s2 = factories.video_session(db, experiment.id, features_path=None)
    s3 = factories.video_session(db, experiment.id)
    model_id = None if ready_model_framing is None else _ready(db, experiment.id,
                                                                ready_model_framing)  # fmt: skip
    db.commit()
    if finished == "upload":
        pipeline.after_upload(db, session=s1, settings=settings)
    elif finished == "probe":
        pipeline.after_probe(db, session=s1, settings=settings)
    elif finished == "ingest":
        pipeline.after_ingest(db, session=s1, framing=CROP_FRAMING, settings=settings,
                              storage=storage)  # fmt: skip
    elif finished == "fit":
        model = db.get(SyllableModel, model_id)
        assert model is not None
        pipeline.after_fit(db, model=model, settings=settings)
    else:
        assert model_id is not None
        pipeline.after_segment(db, model_id=model_id, settings=settings)
    db.commit()
    names = {s1.id: "s1", s2.id: "s2", s3.id: "s3"}
    got = [(k, names.get(s) if s else None, "m" if m == model_id and m else None)
           for k, s, m in _queued(db)]  # fmt: skip
    assert got == sorted(expected, key=lambda e: (e[0], str(e[1])))


def test_a_model_fitted_before_framing_was_stored_is_read_from_its_artifact(
    db: Session, tmp_path: Path
) -> None:
    import json

    from app.core.storage import Storage

    experiment = factories.experiment(db)
    model = factories.syllable_model(db, experiment.id)
    model.artifact_path = "models/7"
    (tmp_path / "models/7").mkdir(parents=True)
    (tmp_path / "models/7/model.json").write_text(json.dumps({"summary": {"crop_framing": 2}}))
    assert pipeline.model_framing(model, Storage(tmp_path)) == 2
    model.artifact_path = "models/missing"
    assert pipeline.model_framing(model, Storage(tmp_path)) == 1


def _segment_jobs(db: Session, model_id: int, n: int) -> list[Job]:
    out = [
        jobs.create(
            db, kind=JobKind.segment, queue="cpu", max_attempts=3, params={"model_id": model_id}
        )
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
