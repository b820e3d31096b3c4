"""Who is asking, and may they: FastAPI dependencies for every API route and page.

A request is authenticated by the session cookie (browsers) or ``Authorization: Bearer``
(scripts). Cookie requests that change something must carry the login's CSRF token
(``X-CSRF-Token`` header, or a ``csrf_token`` form field); bearer requests need none, since a
browser never adds that header by itself. Data of a group the user is not in answers 404, so
ids of other labs' data reveal nothing; a viewer's attempt to change data answers 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from app.accounts import access, service
from app.accounts.errors import Forbidden, NotAuthenticated
from app.accounts.models import LoginSession, User
from app.core.errors import NotFound
from app.deps import DbSession, SettingsDep

COOKIE_NAME = "syllabary_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Declared as security schemes so the OpenAPI document shows how to authenticate.
_bearer = HTTPBearer(auto_error=False, description="an API token from your account page")
_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False, description="a browser login")


class LoginRequired(NotAuthenticated):
    """A page was asked for without a login: answered with a redirect to /login."""


class PageNotFound(NotFound):
    """A page of data that does not exist or is not the user's: the HTML not-found page."""


@dataclass
class Principal:
    user: User
    login: LoginSession | None  # None when authenticated by an API token


def sign(secret_key: str, value: str) -> str:
    """``value.signature``: the cookie's secret, signed with the app's secret key."""
    mac = hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).digest()
    return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def unsign(secret_key: str, signed: str) -> str | None:
    value, _, _sig = signed.rpartition(".")
    if value and hmac.compare_digest(sign(secret_key, value), signed):
        return value
    return None


def get_principal(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal | None:
    """The user behind this request, or None. An invalid bearer token is never ignored."""
    principal: Principal | None = None
    if bearer is not None:
        user = service.user_for_token(db, secret=bearer.credentials)
        if user is None:
            raise NotAuthenticated(
                "The API token is unknown or was revoked; create a new one on your account page."
            )
        principal = Principal(user=user, login=None)
    elif cookie:
        secret = unsign(settings.secret_key, cookie)
        login = (
            service.login_for_secret(
                db,
                secret=secret,
                idle=timedelta(hours=settings.session_idle_hours),
                max_age=timedelta(days=settings.session_max_days),
            )
            if secret
            else None
        )
        if login is not None:
            principal = Principal(user=login.user, login=login)
    db.commit()  # last-seen times; and it hands the connection back to the pool
    request.state.principal = principal
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(get_principal)]


def current_principal(principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise NotAuthenticated(
            "Log in first: send 'Authorization: Bearer <API token>' or use a browser login."
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Only an administrator can manage user accounts.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def check_csrf(request: Request, principal: Principal) -> None:
    """A cookie-authenticated change must echo the login's CSRF token."""
    if principal.login is None or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith("application/x-www-form-urlencoded"):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, principal.login.csrf_token):
        raise Forbidden(
            "The CSRF token is missing or wrong: reload the page and try again "
            "(scripts should use an API token instead of a browser login)."
        )


def check_data_access(request: Request, db: DbSession, user: User) -> None:
    """404 for data outside the user's groups (or absent); 403 for a viewer's changes."""
    needed = "viewer" if request.method in SAFE_METHODS else "editor"
    for name, group_id in access.owning_groups(db, request.path_params):
        role = service.role_in(db, user=user, group_id=group_id) if group_id else None
        if role is None:
            what = name.removesuffix("_id").replace("_", " ")
            raise NotFound(f"The {what} {request.path_params[name]} does not exist.")
        if service.role_rank(role) < service.role_rank(needed):
            raise Forbidden(
                f"You are a {role} of this experiment's lab group and cannot change it; "
                "ask a group owner to make you an editor."
            )


# The checks are split: CSRF may read a form body (async), the data check queries the database
# (sync, so it runs in the thread pool and never blocks the event loop). Each ends its
# transaction, so a request holds no pooled connection while it waits for a thread.


async def api_csrf(request: Request, principal: CurrentPrincipal) -> None:
    await check_csrf(request, principal)


def api_data_access(request: Request, db: DbSession, principal: CurrentPrincipal) -> None:
    """For every API router: allowed to touch the data named in the path."""
    check_data_access(request, db, principal.user)
    db.commit()


def page_principal(request: Request, principal: MaybePrincipal) -> Principal | None:
    """For every page router: a login, else a redirect to /login."""
    if request.url.path.startswith("/static/"):
        return None  # static files served by page routers (plotly.js) are public
    if principal is None:
        raise LoginRequired(request.url.path)
    return principal


PagePrincipal = Annotated[Principal | None, Depends(page_principal)]


async def page_csrf(request: Request, principal: PagePrincipal) -> None:
    if principal is not None:
        await check_csrf(request, principal)


def page_data_access(request: Request, db: DbSession, principal: PagePrincipal) -> None:
    if principal is None:
        return
    try:
        check_data_access(request, db, principal.user)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from exc
    db.commit()


API_ACCESS = [Depends(api_csrf), Depends(api_data_access)]
PAGE_ACCESS = [Depends(page_csrf), Depends(page_data_access)]


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"
