from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.storage import Storage, UploadTooLarge


def test_default_secret_key_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYLLABARY_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SYLLABARY_SECRET_KEY"):
        Settings(environment="production")
    assert Settings(environment="production", secret_key="x" * 40).secret_key == "x" * 40
    assert Settings(environment="development").environment == "development"


def test_defaults_are_the_embedded_mode(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'syllabary.db'}"
    assert settings.is_embedded_broker
    assert settings.files_dir == tmp_path / "storage"
    pg = Settings(database_url="postgresql://u@h/db")
    assert pg.sqlalchemy_url == "postgresql+psycopg://u@h/db"


def test_storage_streams_hashes_dedupes_and_protects_originals(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    data = [b"a" * 1000, b"b" * 500]
    stored = storage.save_chunks(iter(data), "Mouse 1.MP4", max_bytes=10_000)
    assert stored.sha256 == hashlib.sha256(b"".join(data)).hexdigest()
    assert stored.size_bytes == 1500 and stored.path.endswith(".mp4")
    path = storage.abspath(stored.path)
    assert path.read_bytes() == b"".join(data)
    assert path.stat().st_mode & 0o222 == 0  # read-only
    again = storage.save_chunks(iter(data), "copy.mp4", max_bytes=10_000)
    assert again.path == stored.path
    assert len(list((tmp_path / "originals").rglob("*.mp4"))) == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_storage_refuses_oversized_uploads_and_keeps_nothing(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    with pytest.raises(UploadTooLarge, match="upload limit"):
        storage.save_chunks(iter([b"x" * 600, b"x" * 600]), "big.mp4", max_bytes=1000)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "originals").exists()


def test_storage_paths_never_leave_the_root(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "root")
    with pytest.raises(ValueError, match="outside"):
        storage.abspath("../../etc/passwd")
    stored = storage.save_chunks(iter([b"v"]), "../../evil.sh/..", max_bytes=10)
    assert storage.abspath(stored.path).is_relative_to(tmp_path / "root")
