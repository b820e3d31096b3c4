"""Wires accounts into the app: security headers, 401/403 answers, login redirects, routers.

``install(app)`` is all ``create_app`` calls; API and page routers of the other domains get
``API_ACCESS`` / ``PAGE_ACCESS`` as router dependencies where they are included.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.accounts import pages, routes
from app.accounts.deps import LoginRequired, PageNotFound, login_url
from app.accounts.errors import Forbidden, NotAuthenticated

# Only the app's own scripts run; plotly.js sets inline styles on its charts, hence
# style-src 'unsafe-inline' (styles cannot run code).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's interactive API documentation loads Swagger UI / ReDoc from a CDN with an inline
# bootstrap script; those two pages (which show no lab data) get a policy that allows it.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: streams pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        policy = DOCS_POLICY if path.startswith(DOCS_PATHS) else CONTENT_SECURITY_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"content-security-policy"
                ]
                headers.append((b"content-security-policy", policy.encode()))
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def template_context(request: Request) -> dict[str, Any]:
    """Every page knows who is logged in and the CSRF token its scripts and forms send."""
    principal = getattr(request.state, "principal", None)
    login = principal.login if principal is not None else None
    return {
        "current_user": principal.user if principal is not None else None,
        "csrf_token": login.csrf_token if login is not None else "",
    }


def install(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)
    app.state.templates.context_processors.append(template_context)

    async def not_authenticated(request: Request, exc: Exception) -> Response:
        if isinstance(exc, LoginRequired):
            return RedirectResponse(login_url(str(exc)), status_code=303)
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    async def forbidden(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    async def page_not_found(request: Request, exc: Exception) -> Response:
        response: Response = app.state.templates.TemplateResponse(
            request, "not_found.html", {"message": str(exc)}, status_code=404
        )
        return response

    app.add_exception_handler(NotAuthenticated, not_authenticated)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(PageNotFound, page_not_found)
    app.include_router(routes.router)
    app.include_router(pages.public)
    app.include_router(pages.router)
