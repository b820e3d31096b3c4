"""``syllabary user``: create accounts (the first administrator), list them, set passwords."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.accounts import service
from app.core.config import get_settings
from app.core.db import engine_for, session_scope
from app.core.errors import BadInput, Conflict


def _read_password(password_file: Path | None, *, confirm: bool = True) -> str:
    """From --password-file, from a pipe on stdin, or typed twice at a prompt."""
    if password_file is not None:
        return password_file.read_text().strip("\r\n")
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return password


@click.group()
def user() -> None:
    """Manage user accounts (the first administrator: `syllabary user create NAME --admin`)."""


@user.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="may create users and manage every lab group")
@click.option("--group", default=None, help="lab group to join (created if new; default: own)")
@click.option(
    "--role", type=click.Choice(["viewer", "editor", "owner"]), default="owner", show_default=True
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read the password from this file (else from stdin or a prompt)",
)
def create(
    username: str, admin: bool, group: str | None, role: str, password_file: Path | None
) -> None:
    """Create a user; the password comes from --password-file, stdin or a prompt."""
    password = _read_password(password_file)
    try:
        with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
            created = service.create_user(
                db,
                username=username,
                password=password,
                is_admin=admin,
                group_name=group,
                role=role,
            )
            groups = ", ".join(
                f"{m.group.name} ({m.role})" for m in service.memberships(db, user=created)
            )
    except (BadInput, Conflict) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {'administrator' if admin else 'user'} {username}: {groups}")


@user.command("list")
def list_() -> None:
    """Every user, with their lab groups and roles."""
    with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
        for u in service.list_users(db):
            groups = ", ".join(f"{m.group.name} ({m.role})" for m in u.memberships)
            flags = " admin" if u.is_admin else ""
            flags += "" if u.is_active else " disabled"
            click.echo(f"{u.username}{flags}: {groups or 'no lab group'}")


@user.command("set-password")
@click.argument("username")
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read the password from this file (else from stdin or a prompt)",
)
def set_password(username: str, password_file: Path | None) -> None:
    """Set a user's password; their browser logins end."""
    password = _read_password(password_file)
    try:
        with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
            found = service.get_user(db, username=username)
            if found is None:
                raise click.ClickException(f"There is no user named {username!r}.")
            service.set_password(db, user=found, password=password)
    except BadInput as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {username} changed; their browser logins ended")


def ensure_first_admin() -> None:
    """For `syllabary serve` on a fresh database: make an admin and print its password once."""
    with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
        created = service.ensure_first_admin(db)
    if created is not None:
        username, password = created
        click.echo(
            "\n  No user existed, so an administrator was created:\n"
            f"    username: {username}\n    password: {password}\n"
            "  It is shown only now: log in and change it on your account page.\n"
        )
