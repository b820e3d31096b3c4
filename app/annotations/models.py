"""A lab's own behaviour labels for a session (from a person, or another tool)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class Annotation(Base):
    """One label file of one session, as uploaded and as read: one behaviour per frame.
    Annotations are read-only beside the segmentations; nothing here changes a syllable."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    rater: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))
    behaviours: Mapped[list[str]] = mapped_column(JSON)
    # Per-frame behaviour index, int16 bytes; -1 where nobody scored the frame.
    labels: Mapped[bytes] = mapped_column(LargeBinary)
    frame_count: Mapped[int] = mapped_column(Integer)
    scored_frames: Mapped[int] = mapped_column(Integer)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The file exactly as uploaded: exported with the experiment, never rewritten.
    source: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
