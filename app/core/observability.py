"""Request middleware: a request id (``X-Request-ID``), one JSON log line and metrics per request.

A pure ASGI middleware, so streamed uploads and downloads pass through untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import request_id
from app.core.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("syllabary.http")

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept when it is short and plain (it ends up in logs and a response header).
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER)
        rid = given if given and _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged here, where the request id is still known; the server answers 500.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(elapsed)
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "event": "http.request",
                    "request_id": rid,
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id.reset(token)


def _header(scope: Scope, name: str) -> str | None:
    raw = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == raw:
            return str(value.decode("latin-1")).strip()
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/api/sessions/{session_id}``): bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
