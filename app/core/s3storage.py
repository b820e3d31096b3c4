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
nothing is sent when the key exists, and ``publish`` refuses the ``originals/`` prefix.
"""

from __future__ import annotations

import errno
import os
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.core.config import Settings
from app.core.storage import ORIGINALS, Storage, StoredFile, original_path

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Storage(Storage):
    """Files in ``bucket``; ``root`` is this host's cache of them (and its upload scratch)."""

    def __init__(self, root: Path, *, client: Any, bucket: str, part_size: int) -> None:
        super().__init__(root)
        self.client, self.bucket = client, bucket
        # Larger files go as a multipart upload (and ranged downloads) in parts of this size.
        self.transfer = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4
        )

    # -- reading -------------------------------------------------------------------------------

    def local(self, relative: str) -> Path:
        path, key = self.abspath(relative), self.key(relative)
        if key.startswith(ORIGINALS) and path.is_file():
            return path  # content-addressed: a cached original is the original
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
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{key}/"
        ):
            for obj in page.get("Contents", []):
                found = True
                # abspath refuses a key that would land outside the cache.
                self._fetch(obj["Key"], self.abspath(obj["Key"]), obj["Size"], obj["LastModified"])
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
        stamp = modified.timestamp()
        try:
            st = path.stat()
            if st.st_size == size and st.st_mtime == stamp:
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
            if key.startswith(ORIGINALS):
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
            for file in files:
                self._upload(file, file.relative_to(self.root).as_posix())
        else:
            self._upload(path, key)

    def _upload(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), self.bucket, key, Config=self.transfer)
        # This host's copy is now the object: stamp it so that reading it fetches nothing.
        head = self.head(key)
        if head is not None:
            stamp = head["LastModified"].timestamp()
            os.utime(path, (stamp, stamp))

    def _finish(self, tmp_name: str, digest: str, size: int, filename: str) -> StoredFile:
        relative = original_path(digest, filename)
        if self.head(relative) is None:
            # Two uploads of the same bytes at once may both send them: same key, same bytes.
            self.client.upload_file(
                tmp_name,
                self.bucket,
                relative,
                Config=self.transfer,
                ExtraArgs={"Metadata": {"sha256": digest}},
            )
        # Only once the bucket has it (a failed send keeps a resumable upload's partial file).
        os.unlink(tmp_name)
        return StoredFile(path=relative, size_bytes=size, sha256=digest)

    def remote_check(self) -> tuple[bool, str] | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            return False, f"bucket {self.bucket} unreachable: {exc.__class__.__name__}: {exc}"
        return True, "ok"


def s3_storage(settings: Settings) -> S3Storage:
    """The bucket of ``settings`` with ``files_dir`` as this host's cache."""
    client = _client(
        os.getpid(),  # a client is not shared with a forked child process
        settings.s3_endpoint_url or None,
        settings.s3_region,
        settings.s3_access_key or None,
        settings.s3_secret_key or None,
    )
    return S3Storage(
        settings.files_dir,
        client=client,
        bucket=settings.s3_bucket,
        part_size=settings.s3_part_size,
    )


@lru_cache(maxsize=8)
def _client(
    _pid: int, endpoint: str | None, region: str, access: str | None, secret: str | None
) -> Any:
    config = Config(
        # Path-style URLs (endpoint/bucket/key): what MinIO and other self-hosted servers expect.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        signature_version="s3v4",
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
