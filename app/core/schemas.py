"""Types shared by the API schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator


def _as_utc(value: datetime) -> datetime:
    # The database keeps naive UTC; the API says so (RFC 3339 needs an offset).
    return value if value.tzinfo else value.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]

# A database id in a path: anything beyond a 64-bit integer cannot name a row, and would make
# the database driver overflow (a 500) instead of a plain 422.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
