"""Accounts, lab groups, login sessions and API tokens: plain functions over a Session.

Passwords are argon2id hashes. Login-session secrets and API tokens are random 256-bit values
and only their sha256 is stored (a slow hash adds nothing for secrets that cannot be guessed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.errors import Forbidden
from app.accounts.models import ROLES, ApiToken, LabGroup, LoginSession, Membership, User
from app.core.db import utcnow
from app.core.errors import BadInput, Conflict, NotFound

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "syl_"
DEFAULT_GROUP = "default"
# Last-seen times are written at most this often, so reads stay reads under load.
TOUCH_EVERY = timedelta(seconds=60)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def role_rank(role: str) -> int:
    return ROLES.index(role) + 1


# --- users -------------------------------------------------------------------------------------


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.")


def get_user(db: Session, *, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username.strip()))


def get_user_or_raise(db: Session, *, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def count_users(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(User)) or 0)


def create_user(
    db: Session,
    *,
    username: str,
    password: str,
    is_admin: bool = False,
    group_name: str | None = None,
    role: str = "owner",
) -> User:
    """A new user, member of ``group_name`` (created if new) or else of a personal group
    named after them. The first admin also becomes owner of the ``default`` group that the
    migration made for experiments created before accounts existed."""
    username = username.strip()
    if not _USERNAME.match(username):
        raise BadInput(
            "A username is 1-100 letters, digits or . _ @ - and starts with a letter or digit."
        )
    if get_user(db, username=username) is not None:
        raise Conflict(f"The username {username!r} is taken; choose another.")
    check_password_strength(password)
    if role not in ROLES:
        raise BadInput(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    user = User(username=username, password_hash=_hasher.hash(password), is_admin=is_admin)
    db.add(user)
    db.flush()
    if group_name:
        group = get_or_create_group(db, name=group_name)
        set_member(db, group=group, user=user, role=role)
    else:
        group = create_group(db, name=_free_group_name(db, username), owner=user)
    if is_admin:
        default = db.scalar(select(LabGroup).where(LabGroup.name == DEFAULT_GROUP))
        if default is not None and default.id != group.id and not _owners(db, default.id):
            set_member(db, group=default, user=user, role="owner")
    return user


def _free_group_name(db: Session, base: str) -> str:
    name, n = base, 1
    while db.scalar(select(LabGroup.id).where(LabGroup.name == name)) is not None:
        n += 1
        name = f"{base} ({n})"
    return name


def authenticate(db: Session, *, username: str, password: str) -> User | None:
    """The active user with this username and password, else None (same time either way)."""
    user = get_user(db, username=username)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def set_password(
    db: Session, *, user: User, password: str, keep_login: LoginSession | None = None
) -> None:
    """Change the password and end every other login of this user."""
    check_password_strength(password)
    user.password_hash = _hasher.hash(password)
    revoke_logins(db, user=user, keep=keep_login)


def set_active(db: Session, *, user: User, active: bool) -> None:
    user.is_active = active
    if not active:
        revoke_logins(db, user=user)


def ensure_first_admin(db: Session, *, username: str = "admin") -> tuple[str, str] | None:
    """When no user exists, create an admin with a random password: (username, password)."""
    if count_users(db):
        return None
    password = secrets.token_urlsafe(12)
    create_user(db, username=username, password=password, is_admin=True)
    return username, password


# --- groups ------------------------------------------------------------------------------------


def create_group(db: Session, *, name: str, owner: User | None = None) -> LabGroup:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInput("A lab group needs a name of 1-200 characters.")
    if db.scalar(select(LabGroup.id).where(LabGroup.name == name)) is not None:
        raise Conflict(f"A lab group named {name!r} exists already; choose another name.")
    group = LabGroup(name=name)
    db.add(group)
    db.flush()
    if owner is not None:
        set_member(db, group=group, user=owner, role="owner")
    return group


def get_or_create_group(db: Session, *, name: str) -> LabGroup:
    group = db.scalar(select(LabGroup).where(LabGroup.name == name.strip()))
    return group or create_group(db, name=name)


def get_group_or_raise(db: Session, *, group_id: int) -> LabGroup:
    group = db.get(LabGroup, group_id)
    if group is None:
        raise NotFound(f"Lab group {group_id} does not exist.")
    return group


def set_member(db: Session, *, group: LabGroup, user: User, role: str) -> Membership:
    if role not in ROLES:
        raise BadInput(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    membership = db.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.user_id == user.id)
    )
    if membership is None:
        membership = Membership(group_id=group.id, user_id=user.id, role=role)
        db.add(membership)
    else:
        if membership.role == "owner" and role != "owner" and len(_owners(db, group.id)) == 1:
            raise Conflict("A lab group keeps at least one owner; make someone else owner first.")
        membership.role = role
    db.flush()
    return membership


def remove_member(db: Session, *, group: LabGroup, user_id: int) -> None:
    membership = db.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.user_id == user_id)
    )
    if membership is None:
        raise NotFound(f"User {user_id} is not a member of lab group {group.name!r}.")
    if membership.role == "owner" and len(_owners(db, group.id)) == 1:
        raise Conflict("A lab group keeps at least one owner; make someone else owner first.")
    db.delete(membership)
    db.flush()


def _owners(db: Session, group_id: int) -> list[int]:
    return list(
        db.scalars(
            select(Membership.user_id).where(
                Membership.group_id == group_id, Membership.role == "owner"
            )
        )
    )


def members(db: Session, *, group: LabGroup) -> list[Membership]:
    return list(
        db.scalars(
            select(Membership).where(Membership.group_id == group.id).order_by(Membership.id)
        )
    )


def memberships(db: Session, *, user: User) -> list[Membership]:
    return list(
        db.scalars(select(Membership).where(Membership.user_id == user.id).order_by(Membership.id))
    )


def role_in(db: Session, *, user: User, group_id: int) -> str | None:
    return db.scalar(
        select(Membership.role).where(
            Membership.group_id == group_id, Membership.user_id == user.id
        )
    )


def group_ids(db: Session, *, user: User) -> list[int]:
    """The groups whose experiments this user may see."""
    return list(db.scalars(select(Membership.group_id).where(Membership.user_id == user.id)))


def group_for_new_experiment(db: Session, *, user: User, group_id: int | None) -> int:
    """Where a new experiment goes: ``group_id`` if given (the user must be editor or owner
    there), else the user's first group where they may create."""
    if group_id is not None:
        role = role_in(db, user=user, group_id=group_id)
        if role is None:
            raise NotFound(f"Lab group {group_id} does not exist.")
        if role_rank(role) < role_rank("editor"):
            raise Forbidden(
                f"You are a viewer in lab group {group_id}; an editor or owner can create there."
            )
        return group_id
    for membership in memberships(db, user=user):
        if role_rank(membership.role) >= role_rank("editor"):
            return membership.group_id
    raise Forbidden(
        "You are not an editor of any lab group, so you cannot create experiments; "
        "ask a group owner or an administrator to make you an editor."
    )


def require_owner(db: Session, *, user: User, group: LabGroup) -> None:
    """Owners (and administrators) manage a group's members; others get 404 or 403."""
    if user.is_admin:
        return
    role = role_in(db, user=user, group_id=group.id)
    if role is None:
        raise NotFound(f"Lab group {group.id} does not exist.")
    if role != "owner":
        raise Forbidden("Only an owner of this lab group can change its members.")


# --- browser logins ----------------------------------------------------------------------------


def start_login(db: Session, *, user: User) -> tuple[str, LoginSession]:
    """A new login for ``user``: (the secret for the cookie, the row)."""
    secret = secrets.token_urlsafe(32)
    login = LoginSession(
        user_id=user.id, secret_hash=digest(secret), csrf_token=secrets.token_urlsafe(32)
    )
    db.add(login)
    db.flush()
    return secret, login


def login_for_secret(
    db: Session, *, secret: str, idle: timedelta, max_age: timedelta, now: datetime | None = None
) -> LoginSession | None:
    """The live login with this secret; None if unknown, revoked, idle too long or too old."""
    now = now or utcnow()
    login = db.scalar(select(LoginSession).where(LoginSession.secret_hash == digest(secret)))
    if login is None or login.revoked_at is not None or not login.user.is_active:
        return None
    if now - login.last_seen_at > idle or now - login.created_at > max_age:
        return None
    if now - login.last_seen_at > TOUCH_EVERY:
        login.last_seen_at = now  # the request commits it
    return login


def end_login(db: Session, *, login: LoginSession) -> None:
    login.revoked_at = utcnow()


def revoke_logins(db: Session, *, user: User, keep: LoginSession | None = None) -> int:
    """End every login of ``user`` except ``keep``; returns how many ended."""
    query = select(LoginSession).where(
        LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(LoginSession.id != keep.id)
    rows = list(db.scalars(query))
    for login in rows:
        login.revoked_at = utcnow()
    return len(rows)


# --- API tokens --------------------------------------------------------------------------------


def create_token(db: Session, *, user: User, name: str) -> tuple[str, ApiToken]:
    """A new API token: (the token, shown once; the row that keeps only its hash)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInput("Give the token a name of 1-200 characters (e.g. 'analysis laptop').")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], secret_hash=digest(secret))
    db.add(token)
    db.flush()
    return secret, token


def user_for_token(db: Session, *, secret: str, now: datetime | None = None) -> User | None:
    now = now or utcnow()
    token = db.scalar(select(ApiToken).where(ApiToken.secret_hash == digest(secret)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now  # the request commits it
    return token.user


def list_tokens(db: Session, *, user: User) -> list[ApiToken]:
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(db: Session, *, user: User, token_id: int) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(f"API token {token_id} does not exist.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token
