"""Pydantic shapes of the accounts API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.schemas import UtcDateTime

Role = Literal["viewer", "editor", "owner"]


class MembershipPublic(BaseModel):
    group_id: int
    group: str
    user_id: int
    username: str
    role: Role


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    is_admin: bool
    is_active: bool
    created_at: UtcDateTime


class MePublic(UserPublic):
    groups: list[MembershipPublic]


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    is_admin: bool = False
    group: str | None = Field(
        default=None, max_length=200, description="lab group (created if new); default: own group"
    )
    role: Role = "owner"


class UserUpdate(BaseModel):
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1000)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class GroupPublic(BaseModel):
    id: int
    name: str
    role: Role | None = Field(description="your role in it (null for an administrator outside)")


class MemberSet(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    role: Role


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None
    revoked_at: UtcDateTime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="shown only now: store it, it cannot be shown again")
