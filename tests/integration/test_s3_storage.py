"""The S3 storage backend against a real S3 server: moto's, started here on 127.0.0.1.

No S3 service runs on this machine or in CI, so the tests start moto's threaded server (an
in-process HTTP server that speaks the S3 protocol) on a free port; boto3 talks to it over HTTP
exactly as it talks to MinIO. Each test gets a bucket of its own and one or two "hosts": storages
with their own empty cache folders, as the web app and workers on separate machines have.
"""

from __future__ import annotations

import hashlib
import os
import socket
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.config import Settings
from app.core.s3storage import S3Storage
from app.core.storage import Storage, storage_for
from tests import factories
from tests.conftest import backend_env

PART = 5 * 1024**2  # the smallest part S3 accepts
KEYS = {"s3_access_key": "testing", "s3_secret_key": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"syllabary-{uuid.uuid4().hex[:10]}"
    _raw_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _raw_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def host(tmp_path: Path, s3_endpoint: str, bucket: str) -> Callable[[str], S3Storage]:
    """``host("a")``: the storage a machine named "a" would build from its settings."""

    def make(name: str) -> S3Storage:
        settings = Settings(
            storage="s3",
            storage_dir=tmp_path / f"host-{name}",
            s3_bucket=bucket,
            s3_endpoint_url=s3_endpoint,
            s3_part_size=PART,
            **KEYS,
        )
        storage = storage_for(settings)
        assert isinstance(storage, S3Storage)
        return storage

    return make


def _objects(storage: S3Storage, prefix: str = "") -> dict[str, dict[str, Any]]:
    page = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix)
    return {o["Key"]: o for o in page.get("Contents", [])}


def _body(storage: S3Storage, key: str) -> bytes:
    return bytes(storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read())


def _count_uploads(storage: S3Storage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    real = storage.client.upload_file

    def upload_file(filename: str, bucket: str, key: str, **kwargs: Any) -> Any:
        sent.append(key)
        return real(filename, bucket, key, **kwargs)

    monkeypatch.setattr(storage.client, "upload_file", upload_file)
    return sent


# ---------------------------------------------------------------------------------------------
# settings


def test_filesystem_stays_the_default_and_s3_needs_a_bucket(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert settings.storage == "filesystem"
    assert type(storage_for(settings)) is Storage
    with pytest.raises(ValueError, match="SYLLABARY_S3_BUCKET"):
        Settings(storage="s3")
    with pytest.raises(ValueError, match="s3_part_size"):
        Settings(storage="s3", s3_bucket="b", s3_part_size=1024**2)


# ---------------------------------------------------------------------------------------------
# originals


def test_an_original_goes_to_the_bucket_under_its_sha256_once_and_is_never_replaced(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = host("web")
    sent = _count_uploads(web, monkeypatch)
    data = [b"\x00\x00\x00\x18ftypisom" + b"a" * 1000, b"b" * 500]
    whole = b"".join(data)
    digest = hashlib.sha256(whole).hexdigest()

    stored = web.save_chunks(iter(data), "Mouse 1.MP4", max_bytes=10_000)

    assert stored.path == f"originals/{digest[:2]}/{digest}.mp4"
    assert (stored.sha256, stored.size_bytes) == (digest, len(whole))
    assert _body(web, stored.path) == whole
    head = web.client.head_object(Bucket=web.bucket, Key=stored.path)
    assert head["Metadata"]["sha256"] == digest
    assert sent == [stored.path]
    # The web host keeps no copy (nor any scratch file): the bucket is where originals live.
    assert not web.abspath(stored.path).exists()
    assert list((web.root / "tmp").iterdir()) == []

    # The same bytes again, under another name: stored once, nothing sent.
    again = web.save_chunks(iter(data), "copy.mp4", max_bytes=10_000)
    assert again.path == stored.path
    assert sent == [stored.path]
    assert list(_objects(web, "originals/")) == [stored.path]

    # Other bytes get a key of their own; the first original is untouched.
    other = web.save_chunks(iter([whole + b"!"]), "Mouse 1.mp4", max_bytes=10_000)
    assert other.path != stored.path
    assert sorted(_objects(web, "originals/")) == sorted([stored.path, other.path])
    assert _body(web, stored.path) == whole
    assert web.client.head_object(Bucket=web.bucket, Key=stored.path)["ETag"] == head["ETag"]

    # Nothing may be published over an original, not even from a host's own (tampered) copy.
    local = web.abspath(stored.path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="original"):
        web.publish(stored.path)
    assert _body(web, stored.path) == whole


def test_a_large_original_is_sent_as_a_multipart_upload_in_parts(
    host: Callable[[str], S3Storage],
) -> None:
    web = host("web")
    blocks = [os.urandom(1024**2) for _ in range(11)]  # 11 MiB: parts of 5 + 5 + 1 MiB
    whole = b"".join(blocks)
    stored = web.save_chunks(iter(blocks), "long.mp4", max_bytes=len(whole))
    etag = web.client.head_object(Bucket=web.bucket, Key=stored.path)["ETag"].strip('"')
    assert etag.endswith("-3"), etag  # a multipart object's ETag counts its parts
    assert hashlib.sha256(_body(web, stored.path)).hexdigest() == stored.sha256
    small = web.save_chunks(iter([b"x" * 1000]), "short.mp4", max_bytes=10_000)
    assert "-" not in web.client.head_object(Bucket=web.bucket, Key=small.path)["ETag"]

    # Another host reads the original from the bucket, read-only in its cache.
    worker = host("worker")
    path = worker.local(stored.path)
    assert path.is_relative_to(worker.root)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored.sha256
    assert path.stat().st_mode & 0o222 == 0
    assert worker.local(stored.path) == path  # cached: the same file, read again


def test_a_failed_send_keeps_nothing_in_scratch_and_no_object(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = host("web")

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("bucket went away")

    monkeypatch.setattr(web.client, "upload_file", refuse)
    with pytest.raises(ConnectionError):
        web.save_chunks(iter([b"y" * 100]), "m.mp4", max_bytes=10_000)
    assert list((web.root / "tmp").iterdir()) == []
    assert _objects(web) == {}


# ---------------------------------------------------------------------------------------------
# derived files


def test_a_derived_file_is_published_and_read_on_another_host_with_an_empty_cache(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.features import load

    worker, web = host("worker"), host("web")
    rel = "sessions/7/features.npz"
    factories.write_features(worker.root, rel, 40, 30.0)  # the pipeline's own file format
    with pytest.raises(FileNotFoundError):
        web.local(rel)  # not published yet: no other host can see it
    worker.publish(rel)
    assert rel in _objects(worker, "sessions/")

    assert not web.abspath(rel).exists()
    features = load(web.local(rel))  # memory-mapped from the web host's cache
    assert features.n_frames == 40
    assert np.allclose(features.scalars["speed"], 30.0)
    assert web.local(rel).read_bytes() == worker.abspath(rel).read_bytes()

    # The worker replaces it (a job run again): the other host's cached copy is stale and is
    # fetched again; reading it again when nothing changed downloads nothing.
    factories.write_features(worker.root, rel, 90, 12.0)
    worker.publish(rel)
    assert load(web.local(rel)).n_frames == 90
    fetched: list[str] = []
    real = web.client.download_file

    def download_file(bucket: str, key: str, filename: str, **kwargs: Any) -> Any:
        fetched.append(key)
        return real(bucket, key, filename, **kwargs)

    monkeypatch.setattr(web.client, "download_file", download_file)
    web.local(rel)
    assert fetched == []


def test_a_model_directory_is_published_and_fetched_whole_by_its_prefix(
    host: Callable[[str], S3Storage],
) -> None:
    from app.jobs import pipeline

    gpu, web = host("gpu"), host("web")
    artifact = gpu.abspath("models/3")
    artifact.mkdir(parents=True)
    (artifact / "model.json").write_text('{"summary": {"crop_framing": 2}}')
    (artifact / "weights.pt").write_bytes(os.urandom(2048))
    (artifact / "extra").mkdir()
    (artifact / "extra" / "notes.txt").write_text("nested")
    # A sibling whose name shares the prefix's letters is not part of the directory.
    gpu.abspath("models/30").mkdir()
    (gpu.abspath("models/30") / "model.json").write_text("{}")
    gpu.publish("models/30")
    gpu.publish("models/3")
    assert sorted(_objects(gpu, "models/3/")) == [
        "models/3/extra/notes.txt",
        "models/3/model.json",
        "models/3/weights.pt",
    ]

    # The pipeline reads one file of it on a host that has none of it...
    model = types.SimpleNamespace(settings={}, artifact_path="models/3")
    assert pipeline.model_framing(model, web) == 2  # type: ignore[arg-type]
    # ...and a worker fetches the whole directory to load the model.
    worker = host("worker")
    directory = worker.local_dir("models/3")
    assert directory == worker.abspath("models/3")
    assert (directory / "weights.pt").read_bytes() == (artifact / "weights.pt").read_bytes()
    assert (directory / "extra" / "notes.txt").read_text() == "nested"
    assert not worker.abspath("models/30").exists()
    with pytest.raises(FileNotFoundError):
        worker.local_dir("models/4")


def test_paths_that_leave_the_root_are_refused(host: Callable[[str], S3Storage]) -> None:
    storage = host("a")
    for bad in ("../../etc/passwd", "sessions/../../outside.npz", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside"):
            storage.local(bad)
        with pytest.raises(ValueError, match="outside"):
            storage.publish(bad)
    with pytest.raises(ValueError, match="outside"):
        storage.local_dir("../models")
    with pytest.raises(ValueError, match="root"):
        storage.publish("")
    # A key in the bucket that would land outside a host's cache is refused when fetched.
    storage.client.put_object(Bucket=storage.bucket, Key="models/9/../../../../escape", Body=b"x")
    with pytest.raises(ValueError, match="outside"):
        storage.local_dir("models/9")
    assert not (storage.root.parent / "escape").exists()


def test_readiness_names_the_bucket(host: Callable[[str], S3Storage], tmp_path: Path) -> None:
    storage = host("a")
    assert storage.remote_check() == (True, "ok")
    missing = S3Storage(
        tmp_path / "c", client=storage.client, bucket="no-such-bucket", part_size=PART
    )
    ok, reason = missing.remote_check() or (True, "")
    assert not ok and "no-such-bucket" in reason
    assert Storage(tmp_path).remote_check() is None


def test_backup_refuses_a_bucket_instead_of_copying_only_a_cache(tmp_path: Path) -> None:
    from app.ops.backup import BackupError, create, restore

    settings = Settings(var_dir=tmp_path / "var", storage="s3", s3_bucket="lab-files")
    with pytest.raises(BackupError, match="lab-files"):
        create(tmp_path / "backup", settings=settings)
    assert not (tmp_path / "backup").exists()
    with pytest.raises(BackupError, match="bucket"):
        restore(tmp_path, settings=settings)


# ---------------------------------------------------------------------------------------------
# end to end: the web app on one host, a worker on another, the bucket between them


def test_upload_ingest_and_viewing_go_through_the_bucket(
    make_app: Callable[..., Any], tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    from sqlalchemy import select

    from app.jobs.models import Job, JobKind
    from model.synth import render_session, write_video
    from worker.handlers import HANDLERS
    from worker.runner import execute

    video = tmp_path / "mouse.mp4"
    frames, _truth = render_session(2.0, fps=15.0, size=(96, 72), seed=3)
    write_video(video, frames, 15.0)
    env = backend_env(
        tmp_path,
        storage="s3",
        storage_dir=tmp_path / "web-host",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        s3_part_size=PART,
        **KEYS,
    )
    client = make_app(env)
    web: S3Storage = client.app.state.storage
    assert isinstance(web, S3Storage) and web.root == tmp_path / "web-host"
    ready = client.get("/readyz").json()
    assert ready["checks"]["bucket"] == "ok", ready

    experiment = client.post("/api/experiments", json={"name": "Open field"}).json()
    response = client.post(
        f"/api/experiments/{experiment['id']}/sessions",
        files={"file": ("mouse.mp4", video.read_bytes(), "video/mp4")},
        data={"subject": "m1", "cohort": "saline"},
    )
    assert response.status_code == 201, response.text
    session = response.json()
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    original = f"originals/{digest[:2]}/{digest}.mp4"
    assert _body(web, original) == video.read_bytes()
    assert not web.abspath(original).exists()

    # The same bytes through the resumable upload: recognised, nothing sent again.
    size = video.stat().st_size
    upload = client.post(
        f"/api/experiments/{experiment['id']}/uploads", json={"filename": "b.mp4", "size": size}
    ).json()
    done = client.put(
        f"/api/uploads/{upload['id']}",
        content=video.read_bytes(),
        headers={"Content-Range": f"bytes 0-{size - 1}/{size}"},
    )
    assert done.status_code == 200, done.text
    assert client.get(f"/api/uploads/{upload['id']}").json()["status"] == "duplicate"
    assert list(_objects(web, "originals/")) == [original]

    # A worker on another host (its own empty cache) probes and ingests from the bucket.
    worker_settings = client.app.state.settings.model_copy(
        update={"storage_dir": tmp_path / "worker-host"}
    )
    engine = client.app.state.engine

    def run(kind: JobKind) -> None:
        with client.app.state.session_factory() as db:
            job_id = db.scalar(
                select(Job.id).where(Job.session_id == session["id"], Job.kind == kind)
            )
        assert job_id is not None, kind
        status = execute(
            job_id, settings=worker_settings, engine=engine, worker_id="host-b", handlers=HANDLERS
        )
        assert status == "succeeded", client.get(f"/api/jobs/{job_id}").json()

    run(JobKind.probe)
    run(JobKind.ingest)
    folder = f"sessions/{session['id']}"
    published = _objects(web, f"{folder}/")
    assert set(published) == {
        f"{folder}/browser.mp4",
        f"{folder}/thumbnail.jpg",
        f"{folder}/features.npz",
    }
    worker_root = tmp_path / "worker-host"
    assert (worker_root / original).is_file()  # fetched there to be decoded

    # The web host serves what the worker made, fetched from the bucket into its own cache.
    shown = client.get(f"/api/sessions/{session['id']}/video")
    assert shown.status_code == 200
    assert shown.content == (worker_root / folder / "browser.mp4").read_bytes()
    thumb = client.get(f"/api/sessions/{session['id']}/thumbnail.jpg")
    assert thumb.content[:2] == b"\xff\xd8"
    viewer = client.get(f"/api/sessions/{session['id']}/viewer")
    assert viewer.status_code == 200 and viewer.json()["tracks"]["time_s"], viewer.text
    assert (web.root / folder / "features.npz").is_file()
    assert not web.abspath(original).exists()  # the web host never needed the original
