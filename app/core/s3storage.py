"""An S3-compatible bucket (MinIO, AWS S3, ...) as the storage every host shares.

The pipeline reads files by path (PyAV decodes paths, features are memory-mapped .npz files, a
fitted model is a directory), so the bucket is the record of truth and ``root`` is this host's
cache of it: ``local`` downloads a file that is missing or stale there, ``publish`` uploads what a
job wrote. A cached copy is fresh when its size and modification time are the object's (the
time is set from the object's ``LastModified`` on download and after upload), so a derived file
replaced on another host is fetched again; originals never change, so a cached one is never
checked again.

Originals are keyed by their sha256 (``originals/ab/ab12....mp4``), uploaded in parts of
``SYLLABARY_S3_PART_SIZE`` from the file received on the web host, and never written over:
nothing is sent when the key exists, every write of an original is conditional
(``If-None-Match: *``, so a server that supports it refuses to replace an object that appeared
meanwhile), ``publish`` refuses the ``originals`` folder and every key in it, and after sending
the object's size is checked against the file's. An object under an original's key with another
size is corrupt: it is reported, never replaced.

Times are compared at whole seconds: a listing gives ``LastModified`` in milliseconds on some
servers (MinIO), a HEAD request in seconds.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.core.config import Settings
from app.core.errors import StoredFileCorrupt
from app.core.storage import Storage, StoredFile, is_original, original_path

_MISSING = {"404", "NoSuchKey", "NotFound"}
_CONDITIONAL_WRITES = ("PutObject", "CompleteMultipartUpload")
log = logging.getLogger(__name__)


class BucketUnreadable(OSError):
    """The bucket could not be read (down, refused, denied). An OSError, as a local disk's
    failure is: callers that carry on without a derived file (framing, kinematics, a
    comparison's design) carry on the same way instead of failing the request."""


@contextmanager
def _reading(bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise BucketUnreadable(
            errno.EIO,
            f"could not read {key} from the bucket {bucket} ({exc}); check that the S3 "
            f"server answers and that SYLLABARY_S3_* give this host access",
        ) from exc


def _write_originals_only_if_absent(params: dict[str, Any], **_kwargs: Any) -> None:
    """Every write of an original asks the server to refuse it when the key exists."""
    if is_original(str(params.get("Key", ""))):
        params.setdefault("IfNoneMatch", "*")


def _precondition_failed(exc: BaseException) -> bool:
    """Whether a failed send (boto3 wraps the ClientError) was a refused conditional write."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            error = seen.response.get("Error", {})
            return str(error.get("Code")) in {"PreconditionFailed", "412"}
        seen = seen.__cause__ or seen.__context__
    return False


def _seconds(modified: datetime) -> float:
    """A modification time at whole seconds, the precision every S3 answer has."""
    return float(int(modified.timestamp()))


class S3Storage(Storage):
    """Files in ``bucket``; ``root`` is this host's cache of them (and its upload scratch)."""

    def __init__(
        self,
        root: Path,
        *,
        client: Any,
        bucket: str,
        part_size: int,
        probe_client: Any | None = None,
    ) -> None:
        super().__init__(root)
        self.client, self.bucket = client, bucket
        # /readyz asks with a client of its own that gives up fast (no retries, short timeouts).
        self.probe_client = probe_client if probe_client is not None else client
        for operation in _CONDITIONAL_WRITES:  # once per client, however many storages share it
            client.meta.events.register(
                f"before-parameter-build.s3.{operation}",
                _write_originals_only_if_absent,
                unique_id=f"syllabary-originals-if-none-match-{operation}",
            )
        # Larger files go as a multipart upload (and ranged downloads) in parts of this size.
        self.transfer = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4
        )

    # -- reading -------------------------------------------------------------------------------

    def local(self, relative: str) -> Path:
        path, key = self.abspath(relative), self.key(relative)
        if is_original(key) and path.is_file():
            return path  # content-addressed: a cached original is the original
        with _reading(self.bucket, key):
            head = self.head(key)
            if head is None:
                raise FileNotFoundError(
                    errno.ENOENT, f"{key} is not in the bucket {self.bucket}", str(path)
                )
            self._fetch(key, path, int(head["ContentLength"]), head["LastModified"])
        return path

    def local_dir(self, relative: str) -> Path:
        path, key = self.abspath(relative), self.key(relative)
        found = False
        with _reading(self.bucket, f"{key}/"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{key}/"
            ):
                for obj in page.get("Contents", []):
                    found = True
                    # abspath refuses a key that would land outside the cache.
                    self._fetch(
                        obj["Key"], self.abspath(obj["Key"]), obj["Size"], obj["LastModified"]
                    )
        if not found:
            raise FileNotFoundError(
                errno.ENOENT, f"nothing under {key}/ in the bucket {self.bucket}", str(path)
            )
        return path

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None when the bucket has no such key."""
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise
        return head

    def _fetch(self, key: str, path: Path, size: int, modified: datetime) -> None:
        stamp = _seconds(modified)
        try:
            st = path.stat()
            if st.st_size == size and int(st.st_mtime) == stamp:
                return
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        # Into a temporary file beside it, then renamed: a reader (or a memory map) of the old
        # copy keeps it whole, and two processes fetching at once each rename a complete file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, key, tmp, Config=self.transfer)
            os.utime(tmp, (stamp, stamp))
            if is_original(key):
                os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- writing -------------------------------------------------------------------------------

    def publish(self, relative: str) -> None:
        path, key = self.abspath(relative), self.derived_key(relative)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise FileNotFoundError(errno.ENOENT, "nothing to publish", str(path))
            # Every file checked before anything is sent: derived_key resolves links, so a link
            # into the originals is refused too.
            keys = [file.relative_to(self.root).as_posix() for file in files]
            for file_key in keys:
                self.derived_key(file_key)
            for file, file_key in zip(files, keys, strict=True):
                self._upload(file, file_key)
        else:
            self._upload(path, key)

    def _upload(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), self.bucket, key, Config=self.transfer)
        # This host's copy is now the object: stamp it so that reading it fetches nothing.
        head = self.head(key)
        if head is not None:
            stamp = _seconds(head["LastModified"])
            os.utime(path, (stamp, stamp))

    def _finish(self, tmp_name: str, digest: str, size: int, filename: str) -> StoredFile:
        relative = original_path(digest, filename)
        head = self.head(relative)
        if head is None:
            try:
                # Conditional (If-None-Match: *): where two uploads of the same bytes race, the
                # server keeps the first object and refuses the second write.
                self.client.upload_file(
                    tmp_name,
                    self.bucket,
                    relative,
                    Config=self.transfer,
                    ExtraArgs={"Metadata": {"sha256": digest}},
                )
            except Exception as exc:
                if not _precondition_failed(exc):
                    raise
                log.info("%s appeared while it was being sent; the first copy is kept", relative)
            head = self.head(relative)
        self._check_original(relative, head, size)
        # Only once the bucket has it (a failed send keeps a resumable upload's partial file).
        os.unlink(tmp_name)
        return StoredFile(path=relative, size_bytes=size, sha256=digest)

    def _check_original(self, key: str, head: dict[str, Any] | None, size: int) -> None:
        """The object under an original's key must hold the file's number of bytes."""
        stored = None if head is None else int(head["ContentLength"])
        if stored == size:
            return
        found = "no object" if stored is None else f"an object of {stored} bytes"
        log.error(
            "original %s in bucket %s: expected %d bytes, found %s",
            key, self.bucket, size, found,
        )  # fmt: skip
        raise StoredFileCorrupt(
            f"The bucket {self.bucket} holds {found} under {key}, but the uploaded file with "
            f"that sha256 has {size} bytes: the stored original is damaged. Nothing was written "
            "over it (originals are never replaced). Ask an admin to check that object and "
            "delete it if it is wrong; then upload the file again."
        )

    def remote_check(self) -> tuple[bool, str] | None:
        try:
            self.probe_client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            return False, f"bucket {self.bucket} unreachable: {exc.__class__.__name__}: {exc}"
        return True, "ok"


def s3_storage(settings: Settings) -> S3Storage:
    """The bucket of ``settings`` with ``files_dir`` as this host's cache."""
    where = (
        os.getpid(),  # a client is not shared with a forked child process
        settings.s3_endpoint_url or None,
        settings.s3_region,
        settings.s3_access_key or None,
        settings.s3_secret_key or None,
    )
    return S3Storage(
        settings.files_dir,
        client=_client(*where),
        probe_client=_client(*where, probe=True),
        bucket=settings.s3_bucket,
        part_size=settings.s3_part_size,
    )


PROBE_TIMEOUT_S = 2.0  # /readyz: a bucket that does not answer in this long is not ready


@lru_cache(maxsize=16)
def _client(
    _pid: int,
    endpoint: str | None,
    region: str,
    access: str | None,
    secret: str | None,
    *,
    probe: bool = False,
) -> Any:
    """The client for transfers (patient: retries, long timeouts), or with ``probe`` the one
    for readiness checks (one attempt, short timeouts: an outage answers at once)."""
    patience: dict[str, Any] = (
        {
            "connect_timeout": PROBE_TIMEOUT_S,
            "read_timeout": PROBE_TIMEOUT_S,
            # total_max_attempts counts the first request (max_attempts counts only retries).
            "retries": {"total_max_attempts": 1, "mode": "standard"},
        }
        if probe
        else {"retries": {"max_attempts": 5, "mode": "standard"}}
    )
    config = Config(
        # Path-style URLs (endpoint/bucket/key): what MinIO and other self-hosted servers expect.
        s3={"addressing_style": "path" if endpoint else "auto"},
        signature_version="s3v4",
        **patience,
    )
    # Clients are thread-safe, sessions are not: a session of its own, used once.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=config,
    )
