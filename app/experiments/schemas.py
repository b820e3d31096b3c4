from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.schemas import UtcDateTime
from app.jobs.schemas import JobPublic


class ExperimentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    group_id: int | None = Field(
        default=None, description="the lab group it belongs to (default: your first group)"
    )


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    group_id: int
    created_at: UtcDateTime
    px_per_cm: float | None = None


PX_PER_CM = Field(
    default=None,
    gt=0,
    le=10_000,
    description="video pixels per cm of arena floor (e.g. arena width in px / width in cm); "
    "(clear_px_per_cm removes it)",
)


class ExperimentUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    px_per_cm: float | None = PX_PER_CM
    clear_px_per_cm: bool = False


class CohortCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class CohortPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str


class SubjectPublic(BaseModel):
    id: int
    name: str
    cohort: str | None
    sex: str
    age: str
    genotype: str
    notes: str
    session_ids: list[int]


class SubjectUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    cohort: str | None = Field(default=None, max_length=200, description='"" removes the cohort')
    sex: str | None = Field(default=None, max_length=20)
    age: str | None = Field(default=None, max_length=50)
    genotype: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=10_000)


class SessionUpdate(BaseModel):
    subject: str | None = Field(default=None, max_length=200)
    cohort: str | None = Field(default=None, max_length=200)
    recorded_on: date | None = None
    notes: str | None = Field(default=None, max_length=10_000)
    px_per_cm: float | None = PX_PER_CM
    clear_px_per_cm: bool = False


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
    created_at: UtcDateTime
    quality: dict[str, Any] | None = None
    px_per_cm: float | None = None
    # Why this session is left out of fits unless chosen explicitly (None: it goes in).
    fit_problem: str | None = None
    thumbnail_url: str | None = None
    video_url: str | None = None
    jobs: list[JobPublic]
