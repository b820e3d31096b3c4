from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.core.schemas import UtcDateTime


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    queue: str
    session_id: int | None
    experiment_id: int | None
    attempts: int
    max_attempts: int
    progress: float
    progress_message: str
    metrics: list[dict[str, Any]] = []
    error: str | None
    result: dict[str, Any] | None
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
