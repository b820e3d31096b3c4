"""A session is read with its jobs in one statement: status and results from the same moment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.accounts.models import LabGroup
from app.core.db import make_engine, session_factory
from app.core.migrate import upgrade
from app.experiments import service
from app.experiments.models import Experiment, VideoSession
from app.jobs.models import Job, JobStatus


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'snapshot.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_session_read_while_its_job_finishes_is_not_ready_without_results(engine) -> None:
    """The ingest job's result (quality) and its success commit together. A reader that loaded
    the session's columns before that commit and its jobs after it reported "ready" with no
    quality (seen in CI): the jobs must come in the same statement as the session."""
    factory = session_factory(engine)
    with factory() as db:
        group = LabGroup(name="lab")
        db.add(group)
        db.flush()
        experiment = Experiment(name="Open field", group_id=group.id)
        db.add(experiment)
        db.flush()
        row = VideoSession(
            experiment_id=experiment.id,
            original_filename="a.mp4",
            original_path="originals/a.mp4",
            size_bytes=1,
            sha256="0" * 64,
        )
        db.add(row)
        db.flush()
        db.add(
            Job(
                kind="ingest",
                queue="cpu",
                max_attempts=3,
                session_id=row.id,
                status=JobStatus.running,
            )
        )
        db.commit()
        session_id = row.id

    with factory() as reader, factory() as worker:
        seen = service.get_session_or_raise(reader, session_id)
        # The job finishes and its result is written, between the reader's statements.
        job = worker.query(Job).one()
        job.status = JobStatus.succeeded
        done = worker.get(VideoSession, session_id)
        assert done is not None
        done.quality = {"frames": 10}
        worker.commit()
        status = service.session_status(seen)
        assert (status, seen.quality) in (("processing", None), ("ready", {"frames": 10}))
