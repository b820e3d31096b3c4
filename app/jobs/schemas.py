from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


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
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
