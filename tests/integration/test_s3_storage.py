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
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.config import Settings
from app.core.errors import StoredFileCorrupt
from app.core.s3storage import S3Storage
from app.core.storage import Storage, original_path, storage_for
from tests import factories
from tests.conftest import FAKE_MP4, backend_env

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


def test_a_short_object_under_an_originals_key_is_reported_and_never_replaced(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = host("web")
    data = FAKE_MP4 + os.urandom(5000)
    key = original_path(hashlib.sha256(data).hexdigest(), "m.mp4")
    web.client.put_object(Bucket=web.bucket, Key=key, Body=data[:10])  # a damaged original
    etag = web.client.head_object(Bucket=web.bucket, Key=key)["ETag"]
    sent = _count_uploads(web, monkeypatch)

    with pytest.raises(StoredFileCorrupt, match="10 bytes") as refused:
        web.save_chunks(iter([data]), "m.mp4", max_bytes=10_000)
    assert key in str(refused.value) and "Nothing was written over it" in str(refused.value)
    assert sent == []
    assert _body(web, key) == data[:10]
    assert web.client.head_object(Bucket=web.bucket, Key=key)["ETag"] == etag
    assert list((web.root / "tmp").iterdir()) == []


def test_an_original_that_appears_while_it_is_sent_is_kept_not_written_over(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uploads of the same bytes race: both find no object, both send. The write is
    conditional, so the server keeps the first object; the second is checked, not forced."""
    web = host("web")
    real_head = web.head
    asked: list[str] = []

    def head_before_the_other_upload(key: str) -> Any:
        asked.append(key)
        return None if len(asked) == 1 else real_head(key)  # the first look saw no object

    monkeypatch.setattr(web, "head", head_before_the_other_upload)
    sent = _count_uploads(web, monkeypatch)

    # The other upload stored the same bytes meanwhile: accepted, nothing replaced.
    data = FAKE_MP4 + os.urandom(3000)
    key = original_path(hashlib.sha256(data).hexdigest(), "m.mp4")
    web.client.put_object(Bucket=web.bucket, Key=key, Body=data)
    stored = web.save_chunks(iter([data]), "m.mp4", max_bytes=10_000)
    assert stored.path == key and sent == [key]
    assert _body(web, key) == data

    # What appeared meanwhile is damaged (a short object): refused, and it stays as it was
    # for an admin to look at: the conditional write did not replace it.
    asked.clear()
    other = FAKE_MP4 + os.urandom(3000)
    other_key = original_path(hashlib.sha256(other).hexdigest(), "m.mp4")
    web.client.put_object(Bucket=web.bucket, Key=other_key, Body=other[:100])
    with pytest.raises(StoredFileCorrupt, match="100 bytes"):
        web.save_chunks(iter([other]), "m.mp4", max_bytes=10_000)
    assert sent == [key, other_key]
    assert _body(web, other_key) == other[:100]

    # The same with a multipart upload: its completion is conditional too.
    asked.clear()
    big = FAKE_MP4 + os.urandom(PART + 1000)
    big_key = original_path(hashlib.sha256(big).hexdigest(), "m.mp4")
    web.client.put_object(Bucket=web.bucket, Key=big_key, Body=big[:PART])
    with pytest.raises(StoredFileCorrupt, match=f"{PART} bytes"):
        web.save_chunks(iter([big]), "m.mp4", max_bytes=len(big))
    assert _body(web, big_key) == big[:PART]
    assert not web.client.list_multipart_uploads(Bucket=web.bucket).get("Uploads")


def test_an_original_is_checked_against_the_file_after_it_is_sent(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = host("web")
    real = web.client.upload_file

    def loses_bytes(filename: str, bucket: str, key: str, **kwargs: Any) -> Any:
        short = Path(filename).with_suffix(".short")
        short.write_bytes(Path(filename).read_bytes()[:50])
        return real(str(short), bucket, key, **kwargs)

    monkeypatch.setattr(web.client, "upload_file", loses_bytes)
    with pytest.raises(StoredFileCorrupt, match="50 bytes"):
        web.save_chunks(iter([FAKE_MP4 + b"z" * 500]), "m.mp4", max_bytes=10_000)


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


def test_a_bucket_that_cannot_be_read_is_an_os_error_that_names_it(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket down, refusing or denying is an OSError as a failed disk is, so the callers
    that carry on without a derived file (framing, kinematics, a comparison's design) carry
    on, and it names the bucket; a missing key stays FileNotFoundError."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from app.core.s3storage import BucketUnreadable

    worker, web = host("worker"), host("web")
    rel = "sessions/7/features.npz"
    factories.write_features(worker.root, rel, 40, 30.0)
    worker.publish(rel)

    def down(**_kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    monkeypatch.setattr(web.client, "head_object", down)
    with pytest.raises(BucketUnreadable, match=web.bucket) as caught:
        web.local(rel)
    assert isinstance(caught.value, OSError) and not isinstance(caught.value, FileNotFoundError)
    assert "SYLLABARY_S3_" in str(caught.value)
    assert not web.abspath(rel).exists()

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")

    class Refusing:
        def paginate(self, **_kwargs: Any) -> Any:
            raise denied

    monkeypatch.setattr(web.client, "get_paginator", lambda _name: Refusing())
    with pytest.raises(BucketUnreadable, match="AccessDenied"):
        web.local_dir("models/3")
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        web.local("sessions/8/features.npz")  # really missing: still "not found"
    assert web.local(rel).read_bytes() == worker.abspath(rel).read_bytes()  # the bucket is back


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


def test_a_cached_original_read_through_a_listing_is_not_fetched_again(
    host: Callable[[str], S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing gives LastModified in milliseconds on MinIO, a HEAD request in seconds: a copy
    fetched through one is fresh for the other."""
    worker, web = host("worker"), host("web")
    rel = "models/2/model.json"
    worker.abspath(rel).parent.mkdir(parents=True)
    worker.abspath(rel).write_text("{}")
    worker.publish("models/2")
    head = web.head(rel)
    assert head is not None
    listed = head["LastModified"].replace(microsecond=345_000)  # as MinIO lists it
    web._fetch(rel, web.abspath(rel), int(head["ContentLength"]), listed)

    fetched: list[str] = []
    real = web.client.download_file

    def download_file(bucket: str, key: str, filename: str, **kwargs: Any) -> Any:
        fetched.append(key)
        return real(bucket, key, filename, **kwargs)

    monkeypatch.setattr(web.client, "download_file", download_file)
    assert web.local(rel).read_text() == "{}"
    web.local_dir("models/2")
    assert fetched == []


def test_publish_refuses_the_originals_folder_itself_and_links_into_it(
    host: Callable[[str], S3Storage], tmp_path: Path
) -> None:
    storage = host("a")
    cached = storage.abspath("originals/ab/ab12.mp4")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered copy")
    for bad in ("originals", "originals/", "./originals", "x/../originals", "originals/ab"):
        with pytest.raises(ValueError, match="original"):
            storage.publish(bad)
    # A model directory holding a link to a cached original: nothing of it is sent.
    artifact = storage.abspath("models/5")
    artifact.mkdir(parents=True)
    (artifact / "model.json").write_text("{}")
    (artifact / "video.mp4").symlink_to(cached)
    with pytest.raises(ValueError, match="original"):
        storage.publish("models/5")
    assert _objects(storage) == {}
    # The folder backend refuses the same paths.
    with pytest.raises(ValueError, match="original"):
        Storage(tmp_path / "folder").publish("x/../originals")


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


def test_readiness_answers_in_seconds_when_the_bucket_does_not(tmp_path: Path) -> None:
    """A server that accepts connections and never answers (an outage behind a load
    balancer): /readyz must say so at once, not after minutes of retries."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing is ever read
        settings = Settings(
            storage="s3",
            storage_dir=tmp_path / "host",
            s3_bucket="lab-files",
            s3_endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            s3_part_size=PART,
            **KEYS,
        )
        storage = storage_for(settings)
        assert isinstance(storage, S3Storage)
        answer: list[tuple[bool, str] | None] = []
        began = time.monotonic()
        probe = threading.Thread(target=lambda: answer.append(storage.remote_check()), daemon=True)
        probe.start()
        probe.join(20)
        assert not probe.is_alive(), "the readiness check is still waiting for the bucket"
        assert time.monotonic() - began < 10
    ok, reason = answer[0] or (True, "")
    assert not ok and "lab-files" in reason
    # One attempt for the probe; transfers keep their patience (retries, default timeouts).
    assert storage.probe_client.meta.config.retries["total_max_attempts"] == 1
    assert storage.client.meta.config.retries["total_max_attempts"] == 6
    assert storage.client.meta.config.read_timeout == 60


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


def _resumable(client: Any, experiment_id: int, data: bytes) -> tuple[str, Callable[..., Any]]:
    upload = client.post(
        f"/api/experiments/{experiment_id}/uploads", json={"filename": "m.mp4", "size": len(data)}
    ).json()

    def put(start: int, end: int) -> Any:
        return client.put(
            f"/api/uploads/{upload['id']}",
            content=data[start:end],
            headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
        )

    return str(upload["id"]), put


def _s3_app(make_app: Callable[..., Any], tmp_path: Path, s3_endpoint: str, bucket: str) -> Any:
    env = backend_env(
        tmp_path,
        storage="s3",
        storage_dir=tmp_path / "web-host",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        s3_part_size=PART,
        **KEYS,
    )
    return make_app(env)


def test_a_retry_while_the_last_chunk_is_sent_cannot_touch_the_bytes_being_sent(
    make_app: Callable[..., Any],
    tmp_path: Path,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request with the last chunk waits while the file goes to the bucket; the client
    times out, asks how far the upload is and sends the last chunk again. That retry must not
    rewrite the file being sent: it is told the upload is being stored, and nothing changes."""
    client = _s3_app(make_app, tmp_path, s3_endpoint, bucket)
    web: S3Storage = client.app.state.storage
    eid = client.post("/api/experiments", json={"name": "Slow bucket"}).json()["id"]
    data = FAKE_MP4 + os.urandom(300_000)
    cut = 200_000
    upload_id, put = _resumable(client, eid, data)
    assert put(0, cut).status_code == 200

    sending, release = threading.Event(), threading.Event()
    being_sent: list[str] = []
    real = web.client.upload_file

    def slow(filename: str, bucket: str, key: str, **kwargs: Any) -> Any:
        being_sent.append(filename)
        sending.set()
        assert release.wait(30)
        return real(filename, bucket, key, **kwargs)

    monkeypatch.setattr(web.client, "upload_file", slow)
    first: list[Any] = []
    sender = threading.Thread(target=lambda: first.append(put(cut, len(data))))
    sender.start()
    try:
        assert sending.wait(30)
        state = client.get(f"/api/uploads/{upload_id}").json()
        assert (state["status"], state["received_bytes"]) == ("storing", cut)
        retry = put(cut, len(data))
        assert retry.status_code == 409, retry.text
        assert "nothing was written" in retry.json()["detail"]
        # The file being sent is not at the name chunks are written to, and it is whole.
        assert not (web.root / "uploads" / f"{upload_id}.part").exists()
        assert Path(being_sent[0]).read_bytes() == data
    finally:
        release.set()
        sender.join(30)
    assert first[0].status_code == 200, first[0].text
    assert first[0].json()["status"] == "done"
    digest = hashlib.sha256(data).hexdigest()
    assert _body(web, original_path(digest, "m.mp4")) == data
    state = client.get(f"/api/uploads/{upload_id}").json()
    assert (state["status"], state["received_bytes"]) == ("done", len(data))
    assert list((web.root / "uploads").iterdir()) == []  # no partial file, no lock left
    again = put(cut, len(data))
    assert again.status_code == 409 and "already done" in again.json()["detail"]


def test_a_failed_or_abandoned_store_resumes_from_the_last_chunk(
    make_app: Callable[..., Any],
    tmp_path: Path,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.uploads.models import Upload, UploadStatus

    client = _s3_app(make_app, tmp_path, s3_endpoint, bucket)
    web: S3Storage = client.app.state.storage
    eid = client.post("/api/experiments", json={"name": "Bucket outage"}).json()["id"]
    data = FAKE_MP4 + os.urandom(300_000)
    cut = 100_000
    upload_id, put = _resumable(client, eid, data)
    assert put(0, cut).status_code == 200
    partial = web.root / "uploads" / f"{upload_id}.part"

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("bucket went away")

    monkeypatch.setattr(web.client, "upload_file", refuse)
    with pytest.raises(ConnectionError):
        put(cut, len(data))
    state = client.get(f"/api/uploads/{upload_id}").json()
    assert (state["status"], state["received_bytes"]) == ("receiving", cut)
    assert partial.read_bytes() == data  # put back whole; the retry rewrites the last chunk
    assert _objects(web) == {}

    # A web process that died while storing leaves the row "storing" and the file set aside;
    # with nobody holding the upload's lock, the next request gives the upload back.
    with client.app.state.session_factory() as db:
        row = db.get(Upload, upload_id)
        assert row is not None
        row.status = UploadStatus.storing
        db.commit()
    partial.rename(partial.with_suffix(".storing"))
    state = client.get(f"/api/uploads/{upload_id}").json()
    assert (state["status"], state["received_bytes"]) == ("receiving", cut)
    assert partial.read_bytes() == data

    monkeypatch.undo()
    done = put(cut, len(data))
    assert done.status_code == 200 and done.json()["status"] == "done", done.text
    assert _body(web, original_path(hashlib.sha256(data).hexdigest(), "m.mp4")) == data
