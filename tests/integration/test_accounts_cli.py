"""`syllabary user create/list/set-password`, and the administrator `syllabary serve` makes on
a fresh database (its password printed once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import backend_env


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    from app.core.config import get_settings
    from app.core.db import engine_for

    for key, value in backend_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    engine_for.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
    engine_for.cache_clear()


def test_user_commands(cli: CliRunner, tmp_path: Path) -> None:
    from app.accounts import service
    from app.cli import main
    from app.core.config import get_settings
    from app.core.db import engine_for, session_scope

    assert cli.invoke(main, ["migrate"]).exit_code == 0
    password_file = tmp_path / "pw"
    password_file.write_text("first admin password\n")
    r = cli.invoke(main, ["user", "create", "pi", "--admin", "--password-file", str(password_file)])
    assert r.exit_code == 0, r.output
    assert "created administrator pi: pi (owner)" in r.output
    r = cli.invoke(
        main, ["user", "create", "student", "--group", "pi", "--role", "viewer"],
        input="student password\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["user", "create", "student"], input="another password\n")
    assert r.exit_code == 1 and "taken" in r.output
    r = cli.invoke(main, ["user", "create", "shorty"], input="short\n")
    assert r.exit_code == 1 and "at least 10 characters" in r.output
    r = cli.invoke(main, ["user", "list"])
    assert "pi admin: pi (owner)" in r.output and "student: pi (viewer)" in r.output
    r = cli.invoke(main, ["user", "set-password", "student"], input="a brand new password\n")
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["user", "set-password", "nobody"], input="a brand new password\n")
    assert r.exit_code == 1 and "no user named" in r.output
    with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
        assert service.authenticate(db, username="student", password="a brand new password")
        assert not service.authenticate(db, username="student", password="student password")


def test_serve_makes_a_first_admin_once_and_prints_its_password(
    cli: CliRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.accounts import service
    from app.accounts.cli import ensure_first_admin
    from app.cli import main
    from app.core.config import get_settings
    from app.core.db import engine_for, session_scope

    assert cli.invoke(main, ["migrate"]).exit_code == 0
    ensure_first_admin()  # what `syllabary serve` does after migrating
    first = capsys.readouterr().out
    assert "username: admin" in first
    password = first.split("password: ", 1)[1].split()[0]
    with session_scope(engine_for(get_settings().sqlalchemy_url)) as db:
        user = service.authenticate(db, username="admin", password=password)
        assert user is not None and user.is_admin
    ensure_first_admin()
    assert capsys.readouterr().out == ""
