"""Experiments, their cohorts and subjects, and sessions (one video of one subject)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, utcnow

if TYPE_CHECKING:
    from app.jobs.models import Job


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # The lab group whose members may see (viewer) or change (editor, owner) the experiment.
    group_id: Mapped[int] = mapped_column(
        ForeignKey("lab_groups.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Video pixels per cm of arena floor for sessions that give none: kinematics in cm.
    px_per_cm: Mapped[float | None] = mapped_column(Float)

    cohorts: Mapped[list[Cohort]] = relationship(back_populates="experiment")
    subjects: Mapped[list[Subject]] = relationship(back_populates="experiment")
    sessions: Mapped[list[VideoSession]] = relationship(back_populates="experiment")


class Cohort(Base):
    """A group of animals treated alike (e.g. "saline", "drug 10 mg/kg")."""

    __tablename__ = "cohorts"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    experiment: Mapped[Experiment] = relationship(back_populates="cohorts")
    subjects: Mapped[list[Subject]] = relationship(back_populates="cohort")


class Subject(Base):
    """One animal. Its sessions are combined in statistics, never counted as separate animals."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    cohort_id: Mapped[int | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    sex: Mapped[str] = mapped_column(String(20), default="")
    age: Mapped[str] = mapped_column(String(50), default="")
    genotype: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    experiment: Mapped[Experiment] = relationship(back_populates="subjects")
    cohort: Mapped[Cohort | None] = relationship(back_populates="subjects")
    sessions: Mapped[list[VideoSession]] = relationship(back_populates="subject")


class VideoSession(Base):
    """A session: one uploaded video of one subject, with what the pipeline learned of it.

    The uploaded file is stored under ``original_path`` (relative to the storage root) and is
    never altered or deleted by processing.
    """

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("subjects.id", ondelete="SET NULL"), index=True
    )
    original_filename: Mapped[str] = mapped_column(String(500))
    original_path: Mapped[str] = mapped_column(String(1000))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    recorded_on: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, default="")
    # Probe results (null until the probe job succeeds).
    frame_count: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(50))
    pix_fmt: Mapped[str | None] = mapped_column(String(50))
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    probed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Ingest results (paths relative to the storage root; null until ingest succeeds).
    browser_path: Mapped[str | None] = mapped_column(String(1000))
    thumbnail_path: Mapped[str | None] = mapped_column(String(1000))
    features_path: Mapped[str | None] = mapped_column(String(1000))
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Video pixels per cm of arena floor (else the experiment's): kinematics in cm.
    px_per_cm: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    experiment: Mapped[Experiment] = relationship(back_populates="sessions")
    subject: Mapped[Subject | None] = relationship(back_populates="sessions")
    jobs: Mapped[list[Job]] = relationship(
        back_populates="session", order_by="Job.id", passive_deletes=True
    )
