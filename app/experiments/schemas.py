from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.schemas import JobPublic


class ExperimentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    created_at: datetime


class SubjectPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    cohort: str | None


class ProbePublic(BaseModel):
    frame_count: int | None
    fps: float | None
    duration_s: float | None
    width: int | None
    height: int | None
    codec: str | None
    pix_fmt: str | None


class SessionPublic(BaseModel):
    id: int
    experiment_id: int
    status: str
    subject: str | None
    cohort: str | None
    original_filename: str
    size_bytes: int
    sha256: str
    recorded_on: date | None
    notes: str
    frame_count: int | None
    fps: float | None
    duration_s: float | None
    width: int | None
    height: int | None
    codec: str | None
    pix_fmt: str | None
    created_at: datetime
    jobs: list[JobPublic]
