"""Structured logs: one JSON object per line, carrying the request id or the job's identity.

The web app sets ``request_id`` for each request (see ``app.core.observability``) and the worker
sets ``job_id``, ``job_kind`` and ``attempt`` while it runs a job; every log line written in that
context carries them, so one grep follows a request or a job across processes.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "job_context", default=None
)

# Attributes every LogRecord has; anything else came in through ``extra=`` and is emitted.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's terminal-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        job = job_context.get()
        if job:
            entry.update(job)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str | None = None) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level or os.environ.get("SYLLABARY_LOG_LEVEL", "INFO"))
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # Replace plain console handlers (basicConfig's); keep others (files, test capture).
    for old in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(old)
    root.addHandler(handler)


@contextmanager
def job_logging(job_id: int, kind: str, attempt: int) -> Iterator[None]:
    """Tag every log line written inside with the job's id, kind and attempt."""
    token = job_context.set({"job_id": job_id, "job_kind": kind, "attempt": attempt})
    try:
        yield
    finally:
        job_context.reset(token)
