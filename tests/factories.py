"""Rows for tests that work on the database directly (no video, no fit): an experiment in a
lab group, its sessions, a model with its syllables."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

import app.models  # noqa: F401 - every table mapped (sessions refer to jobs)
from app.accounts.models import LabGroup
from app.experiments.models import Experiment, VideoSession
from app.syllables.models import Syllable, SyllableModel
from app.syllables.palette import syllable_color


def experiment(db: Session, name: str = "Experiment") -> Experiment:
    group = LabGroup(name=f"lab-{uuid.uuid4().hex[:8]}")
    db.add(group)
    db.flush()
    row = Experiment(name=name, description="", group_id=group.id)
    db.add(row)
    db.flush()
    return row


def video_session(
    db: Session, experiment_id: int, *, frames: int = 300, fps: float = 30.0,
    features_path: str | None = "features/x.npz",
) -> VideoSession:  # fmt: skip
    row = VideoSession(
        experiment_id=experiment_id,
        original_filename=f"{uuid.uuid4().hex[:6]}.mp4",
        original_path=f"originals/{uuid.uuid4().hex}.mp4",
        size_bytes=1000,
        sha256=uuid.uuid4().hex,
        frame_count=frames,
        fps=fps,
        duration_s=frames / fps,
        features_path=features_path,
    )
    db.add(row)
    db.flush()
    return row


def syllable_model(
    db: Session, experiment_id: int, *, version: int = 1, states: int = 4, status: str = "ready"
) -> SyllableModel:
    row = SyllableModel(
        experiment_id=experiment_id, version=version, status=status, states=states,
        settings={"states": states}, session_ids=[], training_curve=[],
    )  # fmt: skip
    db.add(row)
    db.flush()
    if status == "ready":
        db.add_all(
            Syllable(model_id=row.id, index=k, color=syllable_color(k)) for k in range(states)
        )
        db.flush()
    return row


def write_features(
    storage_root: Path, rel: str, frames: int, speed: float, *, fps: float = 30.0
) -> None:
    """A tiny features file with x, y and speed (px, px/s): the mouse moves along x."""
    from model.features import Features, save

    save(
        Features(
            crops=np.zeros((frames, 4, 4), np.uint8),
            scalars={
                "x": np.arange(frames) * speed / fps,
                "y": np.zeros(frames),
                "speed": np.full(frames, speed),
            },
            quality=np.zeros(frames, np.int8),
            times=np.arange(frames) / fps,
            fps=fps,
            summary={},
        ),
        storage_root / rel,
    )
