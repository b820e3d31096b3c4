"""Fitted models, their syllables, and each session's segmentation into bouts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, utcnow


class ModelStatus(enum.StrEnum):
    training = "training"
    ready = "ready"  # fitted and frozen
    failed = "failed"  # not stored: a training model whose fit job gave up (model_status)


class SyllableModel(Base):
    """A fitted SVAE of one experiment. Versions count up; a ready model is frozen for ever,
    so its syllable ids mean the same thing in every session it segments."""

    __tablename__ = "syllable_models"
    __table_args__ = (UniqueConstraint("experiment_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=ModelStatus.training)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    session_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    artifact_path: Mapped[str | None] = mapped_column(String(1000))
    states: Mapped[int] = mapped_column(Integer, default=40)
    states_used: Mapped[int | None] = mapped_column(Integer)
    median_duration_s: Mapped[float | None] = mapped_column(Float)
    training_curve: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    fitted_at: Mapped[datetime | None] = mapped_column(DateTime)

    syllables: Mapped[list[Syllable]] = relationship(
        back_populates="model", order_by="Syllable.index", passive_deletes=True
    )


class Syllable(Base):
    """One discrete state of a model, with the name and description the lab gives it."""

    __tablename__ = "syllables"
    __table_args__ = (UniqueConstraint("model_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("syllable_models.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    color: Mapped[str] = mapped_column(String(20), default="#888888")
    clips: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    model: Mapped[SyllableModel] = relationship(back_populates="syllables")

    @property
    def label(self) -> str:
        return self.name or f"syllable {self.index}"


class Segmentation(Base):
    """A session segmented by a model: per-frame syllables (as bouts) and probabilities."""

    __tablename__ = "segmentations"
    __table_args__ = (UniqueConstraint("session_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("syllable_models.id", ondelete="CASCADE"), index=True
    )
    frame_count: Mapped[int] = mapped_column(Integer)
    # Per-frame probability of the chosen syllable, float16 bytes (2 bytes a frame).
    probability: Mapped[bytes] = mapped_column(LargeBinary)
    usage: Mapped[list[float]] = mapped_column(JSON)
    transition_counts: Mapped[list[list[int]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    bouts: Mapped[list[Bout]] = relationship(
        back_populates="segmentation", order_by="Bout.start_frame", passive_deletes=True
    )


class Bout(Base):
    """A run of frames in one syllable, ``[start_frame, end_frame)``."""

    __tablename__ = "bouts"
    __table_args__ = (Index("ix_bouts_segmentation_start", "segmentation_id", "start_frame"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segmentation_id: Mapped[int] = mapped_column(ForeignKey("segmentations.id", ondelete="CASCADE"))
    syllable: Mapped[int] = mapped_column(Integer, index=True)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)

    segmentation: Mapped[Segmentation] = relationship(back_populates="bouts")


class SyllableGrouping(Base):
    """One version of a model's grouping of syllables under shared names ("groom" = 3 + 7).
    The model stays frozen; a grouping only changes how its syllables are shown, counted and
    exported. Versions count up; undo marks the newest one undone (history is kept)."""

    __tablename__ = "syllable_groupings"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("syllable_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # [{"name": "groom", "syllables": [3, 7]}, ...]; syllables in no group stay themselves.
    groups: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime)
