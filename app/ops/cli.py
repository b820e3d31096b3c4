"""``syllabary backup create|verify|restore``: see app/ops/backup.py and docs/operations.md."""

from __future__ import annotations

from pathlib import Path

import click

from app.core.config import get_settings


@click.group()
def backup() -> None:
    """Back up, verify and restore the database and the stored files."""


@backup.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
def create(dest: Path) -> None:
    """Write a backup into DEST (a new or empty folder)."""
    from app.ops.backup import BackupError
    from app.ops.backup import create as create_backup

    try:
        manifest = create_backup(dest, settings=get_settings())
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"backup written to {dest}: {manifest['database']['kind']} database "
        f"(revision {manifest['database']['revision']}), {len(manifest['files'])} files"
    )


@backup.command()
@click.argument("dest", type=click.Path(file_okay=False, exists=True, path_type=Path))
def verify(dest: Path) -> None:
    """Re-hash every file of the backup in DEST and open its database dump."""
    from app.ops.backup import verify as verify_backup

    problems = verify_backup(dest)
    if problems:
        raise click.ClickException(
            f"{dest} is damaged ({len(problems)} problems):\n  " + "\n  ".join(problems)
        )
    click.echo(f"{dest}: backup verified, every checksum matches")


@backup.command()
@click.argument("dest", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="replace a non-empty database or storage folder")
def restore(dest: Path, force: bool) -> None:
    """Restore the backup in DEST into the configured database and storage folder."""
    from app.ops.backup import BackupError
    from app.ops.backup import restore as restore_backup

    settings = get_settings()
    try:
        manifest = restore_backup(dest, settings=settings, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"restored {dest}: database (revision {manifest['database']['revision']}) and "
        f"{len(manifest['files'])} files into {settings.files_dir}; run 'syllabary migrate' "
        "if this version is newer than the backup"
    )
