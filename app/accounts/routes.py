"""JSON API for accounts: who am I, password, API tokens, users (admins), lab groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.accounts import service
from app.accounts.deps import API_ACCESS, AdminUser, CurrentPrincipal, CurrentUser
from app.accounts.errors import Forbidden
from app.accounts.models import LabGroup, Membership
from app.accounts.schemas import (
    GroupCreate,
    GroupPublic,
    MemberSet,
    MembershipPublic,
    MePublic,
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.core.errors import NotFound
from app.core.schemas import RowId
from app.deps import DbSession

router = APIRouter(prefix="/api", tags=["accounts"], dependencies=API_ACCESS)


def membership_public(m: Membership) -> MembershipPublic:
    return MembershipPublic(
        group_id=m.group_id,
        group=m.group.name,
        user_id=m.user_id,
        username=m.user.username,
        role=m.role,  # type: ignore[arg-type]
    )


@router.get("/me")
def me(user: CurrentUser, db: DbSession) -> MePublic:
    groups = [membership_public(m) for m in service.memberships(db, user=user)]
    return MePublic(**UserPublic.model_validate(user).model_dump(), groups=groups)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, principal: CurrentPrincipal, db: DbSession) -> Response:
    """Change your password; every other login of yours ends."""
    user = principal.user
    if service.authenticate(db, username=user.username, password=body.current_password) is None:
        raise Forbidden("The current password is wrong; nothing was changed.")
    service.set_password(db, user=user, password=body.new_password, keep_login=principal.login)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tokens")
def list_tokens(user: CurrentUser, db: DbSession) -> list[TokenPublic]:
    return [TokenPublic.model_validate(t) for t in service.list_tokens(db, user=user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, user: CurrentUser, db: DbSession) -> TokenCreated:
    """A new API token for scripts; the answer is the only time it is shown."""
    secret, token = service.create_token(db, user=user, name=body.name)
    db.commit()
    return TokenCreated(**TokenPublic.model_validate(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: RowId, user: CurrentUser, db: DbSession) -> TokenPublic:
    token = service.revoke_token(db, user=user, token_id=token_id)
    db.commit()
    return TokenPublic.model_validate(token)


@router.get("/users")
def list_users(_admin: AdminUser, db: DbSession) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in service.list_users(db)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _admin: AdminUser, db: DbSession) -> UserPublic:
    user = service.create_user(
        db,
        username=body.username,
        password=body.password,
        is_admin=body.is_admin,
        group_name=body.group,
        role=body.role,
    )
    db.commit()
    return UserPublic.model_validate(user)


@router.patch("/users/{user_id}")
def update_user(user_id: RowId, body: UserUpdate, admin: AdminUser, db: DbSession) -> UserPublic:
    """Disable or enable an account (disabling ends its logins), or set its password."""
    user = service.get_user_or_raise(db, user_id=user_id)
    if body.is_active is not None:
        if user.id == admin.id and not body.is_active:
            raise Forbidden("You cannot disable your own account; ask another administrator.")
        service.set_active(db, user=user, active=body.is_active)
    if body.password is not None:
        service.set_password(db, user=user, password=body.password)
    db.commit()
    return UserPublic.model_validate(user)


@router.post("/users/{user_id}/logout", status_code=status.HTTP_204_NO_CONTENT)
def revoke_user_logins(user_id: RowId, _admin: AdminUser, db: DbSession) -> Response:
    """End every browser login of a user (their API tokens stay; revoke those separately)."""
    service.revoke_logins(db, user=service.get_user_or_raise(db, user_id=user_id))
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/groups")
def list_groups(user: CurrentUser, db: DbSession) -> list[GroupPublic]:
    """The lab groups you belong to, with your role."""
    return [
        GroupPublic(id=m.group_id, name=m.group.name, role=m.role)  # type: ignore[arg-type]
        for m in service.memberships(db, user=user)
    ]


@router.post("/groups", status_code=status.HTTP_201_CREATED)
def create_group(body: GroupCreate, user: CurrentUser, db: DbSession) -> GroupPublic:
    """A new lab group with you as its owner."""
    group = service.create_group(db, name=body.name, owner=user)
    db.commit()
    return GroupPublic(id=group.id, name=group.name, role="owner")


def visible_group(group_id: RowId, user: CurrentUser, db: DbSession) -> LabGroup:
    """The group named in the path, if the user is in it (or an administrator); else 404."""
    group = service.get_group_or_raise(db, group_id=group_id)
    if not user.is_admin and service.role_in(db, user=user, group_id=group.id) is None:
        raise NotFound(f"Lab group {group_id} does not exist.")
    return group


def owned_group(
    group: Annotated[LabGroup, Depends(visible_group)], user: CurrentUser, db: DbSession
) -> LabGroup:
    service.require_owner(db, user=user, group=group)
    return group


VisibleGroup = Annotated[LabGroup, Depends(visible_group)]
OwnedGroup = Annotated[LabGroup, Depends(owned_group)]


@router.get("/groups/{group_id}/members")
def list_members(group: VisibleGroup, db: DbSession) -> list[MembershipPublic]:
    return [membership_public(m) for m in service.members(db, group=group)]


@router.put("/groups/{group_id}/members")
def set_member(group: OwnedGroup, body: MemberSet, db: DbSession) -> MembershipPublic:
    """Add a user to the group or change their role (owners and administrators only)."""
    member = service.get_user(db, username=body.username)
    if member is None:
        raise NotFound(f"There is no user named {body.username!r}.")
    membership = service.set_member(db, group=group, user=member, role=body.role)
    db.commit()
    return membership_public(membership)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(group: OwnedGroup, user_id: RowId, db: DbSession) -> Response:
    service.remove_member(db, group=group, user_id=user_id)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
