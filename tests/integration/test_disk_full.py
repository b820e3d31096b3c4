"""A full disk during upload (a small tmpfs as the storage folder; needs root to mount it).

The client gets a clear 507, nothing partial is stored as a video, earlier uploads stay intact,
and once space is freed the resumable upload continues from the last byte the server kept.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_MP4, IN_CI, backend_env

CHUNK = 256 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root; run this test as root (CI does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    mount = tmp_path / "storage"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"could not mount a tmpfs at {mount}: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def video_like(size: int, seed: int) -> bytes:
    return FAKE_MP4 + random.Random(seed).randbytes(size - len(FAKE_MP4))


def put(client, upload_id: str, data: bytes, start: int, end: int):  # type: ignore[no-untyped-def]
    return client.put(
        f"/api/uploads/{upload_id}",
        content=data[start:end],
        headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
    )


def test_full_disk_gives_507_and_the_upload_resumes_after_space_is_freed(
    make_app, small_disk, tmp_path
) -> None:
    client = make_app(backend_env(tmp_path, storage_dir=small_disk))
    eid = client.post("/api/experiments", json={"name": "Full disk"}).json()["id"]
    first = video_like(600_000, 1)
    ok = client.post(f"/api/experiments/{eid}/sessions", files={"file": ("first.mp4", first)})
    assert ok.status_code == 201, ok.text
    filler = small_disk / "filler.bin"
    filler.write_bytes(bytes(1_600_000))  # leaves less than the next upload needs

    # Resumable upload: a chunk that does not fit is refused whole; what was kept is reported.
    big = video_like(1_400_000, 2)
    upload = client.post(
        f"/api/experiments/{eid}/uploads", json={"filename": "big.mp4", "size": len(big)}
    ).json()
    offset, answer = 0, None
    while offset < len(big):
        answer = put(client, upload["id"], big, offset, min(len(big), offset + CHUNK))
        if answer.status_code != 200:
            break
        offset = answer.json()["received_bytes"]
    assert answer is not None and answer.status_code == 507, answer.text if answer else None
    detail = answer.json()["detail"]
    assert "out of disk space" in detail and "big.mp4" in detail and "free space" in detail
    kept = client.get(f"/api/uploads/{upload['id']}").json()
    assert kept["status"] == "receiving" and kept["received_bytes"] == offset > 0
    partial = small_disk / "uploads" / f"{upload['id']}.part"
    assert partial.read_bytes() == big[:offset]  # the failed chunk left nothing behind

    # A one-shot upload that does not fit: 507, no temporary file left, no session.
    whole = client.post(
        f"/api/experiments/{eid}/sessions", files={"file": ("whole.mp4", video_like(900_000, 3))}
    )
    assert whole.status_code == 507, whole.text
    assert "out of disk space" in whole.json()["detail"]
    assert list((small_disk / "tmp").iterdir()) == []
    assert len(client.get(f"/api/experiments/{eid}/sessions").json()) == 1

    # Space is freed: the upload continues from the byte the server kept, and completes.
    filler.unlink()
    offset = client.get(f"/api/uploads/{upload['id']}").json()["received_bytes"]
    while offset < len(big):
        answer = put(client, upload["id"], big, offset, min(len(big), offset + CHUNK))
        assert answer.status_code == 200, answer.text
        offset = answer.json()["received_bytes"]
    assert answer.json()["status"] == "done"
    session = client.get(f"/api/sessions/{answer.json()['session_id']}").json()
    assert session["sha256"] == hashlib.sha256(big).hexdigest()
    stored = {p.name: p.read_bytes() for p in (small_disk / "originals").rglob("*.mp4")}
    assert sorted(stored.values(), key=len) == [first, big]  # earlier upload intact, no corruption
