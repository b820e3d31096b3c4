from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.core.schemas import UtcDateTime
from app.syllables.models import ModelStatus


class FitRequest(BaseModel):
    states: int = Field(default=40, ge=2, le=100, description="most syllables the model may use")
    epochs: int | None = Field(default=None, ge=1, le=1000, description="default: automatic")
    session_ids: list[int] | None = Field(
        default=None,
        description="default: every ready session a model can handle (see a session's fit_problem)",
    )
    include_flagged: bool = Field(
        default=False, description="also fit the sessions that have a fit_problem"
    )


class ClipPublic(BaseModel):
    url: str
    session_id: int
    start_frame: int
    end_frame: int


class SyllablePublic(BaseModel):
    id: int
    index: int
    name: str
    label: str
    description: str
    color: str
    usage: float
    bout_count: int
    median_duration_s: float | None
    durations_s: list[float]
    clips: list[ClipPublic]
    speed: float | None = Field(default=None, description="median, in kinematics_unit per s")
    turning_deg_s: float | None = Field(default=None, description="median |turning rate|")
    body_length: float | None = Field(default=None, description="median, in kinematics_unit")


class SyllableUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


class ModelPublic(BaseModel):
    id: int
    experiment_id: int
    version: int
    status: ModelStatus
    states: int
    states_used: int | None
    median_duration_s: float | None
    session_ids: list[int]
    settings: dict[str, Any]
    training_curve: list[dict[str, Any]]
    created_at: UtcDateTime
    fitted_at: UtcDateTime | None
    job_id: int | None
    transition_matrix: list[list[float]] | None = None
    syllables: list[SyllablePublic] = []
    kinematics_unit: str | None = Field(
        default=None, description="cm (every session has a scale), body lengths, or px"
    )
    kinematics_note: str = ""


class BoutsColumns(BaseModel):
    start: list[int]
    end: list[int]
    syllable: list[int]


class ViewerData(BaseModel):
    session_id: int
    video_url: str | None
    fps: float
    frame_count: int
    duration_s: float
    first_time_s: float
    model: dict[str, int] | None
    syllables: list[dict[str, Any]]
    bouts: BoutsColumns
    tracks: dict[str, list[float]]
    quality: dict[str, Any] | None


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    syllables: list[int] = Field(min_length=2, max_length=100)


class GroupingIn(BaseModel):
    groups: list[GroupIn] = Field(
        max_length=100, description="every group in force (an empty list ungroups all)"
    )


class GroupingPublic(BaseModel):
    version: int
    groups: list[GroupIn]
    created_at: UtcDateTime | None = None
    undone_at: UtcDateTime | None = None


class GroupingsPublic(BaseModel):
    """The grouping in force (None: every syllable on its own) and every version made."""

    current: GroupingPublic | None
    history: list[GroupingPublic]


class GroupingSuggestion(BaseModel):
    syllables: list[int]
    labels: list[str]
    distance: float = Field(description="smaller: more alike (log-ratio scale)")
    reason: str
