"""Pages: log in and out, your account (password, API tokens), user administration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.accounts import service
from app.accounts.deps import (
    COOKIE_NAME,
    PAGE_ACCESS,
    CurrentPrincipal,
    MaybePrincipal,
    Principal,
    check_csrf,
    sign,
)
from app.accounts.errors import Forbidden
from app.accounts.models import ROLES
from app.core.errors import BadInput, Conflict, NotFound
from app.deps import DbSession, SettingsDep

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=PAGE_ACCESS)


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would leave the app.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@public.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: MaybePrincipal, next: str = "/") -> Response:
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", {"next": _safe_next(next), "error": None})


@public.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    user = service.authenticate(db, username=username, password=password)
    if user is None:
        db.rollback()
        return _render(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": "Wrong username or password.",
                "username": username,
            },
            status_code=401,
        )
    secret, _login = service.start_login(db, user=user)
    db.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        sign(settings.secret_key, secret),
        max_age=int(settings.session_max_days * 86400),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@public.post("/logout")
async def logout(request: Request, db: DbSession, principal: MaybePrincipal) -> Response:
    if principal is not None and principal.login is not None:
        await check_csrf(request, principal)
        service.end_login(db, login=principal.login)
        db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


def _account(
    request: Request, db: DbSession, principal: CurrentPrincipal, **extra: Any
) -> HTMLResponse:
    user = principal.user
    context = {
        "user": user,
        "groups": service.memberships(db, user=user),
        "tokens": service.list_tokens(db, user=user),
        "new_token": None,
        "message": None,
        "error": None,
        **extra,
    }
    return _render(request, "account.html", context, status_code=422 if extra.get("error") else 200)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, db: DbSession, principal: CurrentPrincipal) -> HTMLResponse:
    return _account(request, db, principal)


@router.post("/account/password", response_class=HTMLResponse)
def account_password(
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    current_password: Annotated[str, Form(max_length=1000)],
    new_password: Annotated[str, Form(max_length=1000)],
) -> HTMLResponse:
    user = principal.user
    if service.authenticate(db, username=user.username, password=current_password) is None:
        return _account(request, db, principal, error="The current password is wrong.")
    try:
        service.set_password(db, user=user, password=new_password, keep_login=principal.login)
    except BadInput as exc:
        return _account(request, db, principal, error=str(exc))
    db.commit()
    return _account(
        request, db, principal, message="Password changed; your other logins have ended."
    )


@router.post("/account/tokens", response_class=HTMLResponse)
def account_new_token(
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    name: Annotated[str, Form(max_length=200)],
) -> HTMLResponse:
    try:
        secret, _token = service.create_token(db, user=principal.user, name=name)
    except BadInput as exc:
        return _account(request, db, principal, error=str(exc))
    db.commit()
    return _account(request, db, principal, new_token=secret)


@router.post("/account/tokens/{token_id}/revoke")
def account_revoke_token(token_id: int, db: DbSession, principal: CurrentPrincipal) -> Response:
    service.revoke_token(db, user=principal.user, token_id=token_id)
    db.commit()
    return RedirectResponse("/account", status_code=303)


def _admin(principal: CurrentPrincipal) -> Principal:
    if not principal.user.is_admin:
        raise NotFound("This page is for administrators.")
    return principal


AdminPrincipal = Annotated[Principal, Depends(_admin)]


def _users(request: Request, db: DbSession, **extra: Any) -> HTMLResponse:
    context = {"users": service.list_users(db), "roles": ROLES, "error": None, "message": None}
    context.update(extra)
    return _render(request, "users.html", context, status_code=422 if extra.get("error") else 200)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, db: DbSession, _principal: AdminPrincipal) -> HTMLResponse:
    return _users(request, db)


@router.post("/admin/users", response_class=HTMLResponse)
def users_create(
    request: Request,
    db: DbSession,
    _principal: AdminPrincipal,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    group: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "owner",
    is_admin: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    try:
        user = service.create_user(
            db,
            username=username,
            password=password,
            is_admin=is_admin,
            group_name=group.strip() or None,
            role=role,
        )
    except (BadInput, Conflict, Forbidden) as exc:
        db.rollback()
        return _users(request, db, error=str(exc))
    db.commit()
    return _users(request, db, message=f"Created {user.username}.")
