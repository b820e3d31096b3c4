"""File storage: a folder (this module), or an S3-compatible bucket (``app.core.s3storage``).

Uploads are streamed to disk in chunks with a byte cap and a running sha256, then moved into
place atomically and made read-only: nothing the pipeline does may alter or delete an original.
Originals are content-addressed, so the same file uploaded twice is stored once.

Code that reads a stored file asks ``local(path)`` (``local_dir`` for a directory such as a
model artifact) and code that writes a derived file writes it at ``abspath(path)`` and then calls
``publish(path)``. On a folder these are the same place and ``publish`` does nothing; with a
bucket, ``root`` is this host's cache: ``local`` downloads and ``publish`` uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import InsufficientStorage
from app.core.metrics import UPLOAD_BYTES

if TYPE_CHECKING:
    from app.core.config import Settings

_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
ORIGINALS = "originals/"


class UploadTooLarge(ValueError):
    """An upload went over the configured size limit."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the storage root
    size_bytes: int
    sha256: str


def safe_suffix(filename: str) -> str:
    """The file's extension, lower-cased, if it is a plain short one; else empty."""
    suffix = Path(filename).suffix.lower()
    return suffix if _SAFE_SUFFIX.match(suffix) else ""


def is_original(key: str) -> bool:
    """Whether a key (in normal form) is the originals folder or lies in it."""
    return key == ORIGINALS.rstrip("/") or key.startswith(ORIGINALS)


def original_path(sha256: str, filename: str) -> str:
    """Where an original with these bytes is stored: its sha256, never a name."""
    return f"{ORIGINALS}{sha256[:2]}/{sha256}{safe_suffix(filename)}"


class Storage:
    """Files under one folder; every host that runs the app or a worker must see the same one."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def abspath(self, relative: str) -> Path:
        """Resolve a stored path, refusing anything that would leave the storage root."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"path {relative!r} is outside the storage root")
        return path

    def key(self, relative: str) -> str:
        """The stored path in normal form (``a/./b`` is ``a/b``); refuses the root itself."""
        key = self.abspath(relative).relative_to(self.root).as_posix()
        if key == ".":
            raise ValueError(f"path {relative!r} names the storage root, not a stored file")
        return key

    def local(self, relative: str) -> Path:
        """A stored file's path on this host, to read it. Here: where it lives."""
        return self.abspath(relative)

    def local_dir(self, relative: str) -> Path:
        """A stored directory (a model artifact) on this host, every file in it, to read it."""
        return self.abspath(relative)

    def publish(self, relative: str) -> None:
        """Make a derived file or directory, written at ``abspath(relative)``, visible to every
        host. A folder shared by the hosts already is; a bucket needs it uploaded."""
        self.derived_key(relative)

    def derived_key(self, relative: str) -> str:
        """The key of a derived file: originals arrive only through an upload, never this way."""
        key = self.key(relative)
        if is_original(key):
            raise ValueError(f"{key} is an original: originals are never written over")
        return key

    def remote_check(self) -> tuple[bool, str] | None:
        """Whether the shared store answers (for /readyz); a folder has nothing beyond itself."""
        return None

    def _tmp(self) -> tuple[int, str]:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=tmp_dir, prefix="upload-")

    def _finish(self, tmp_name: str, digest: str, size: int, filename: str) -> StoredFile:
        """Put a received file (``tmp_name``, consumed on success) into the originals."""
        relative = original_path(digest, filename)
        final = self.abspath(relative)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            os.unlink(tmp_name)  # identical content is already stored
        else:
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, final)
        return StoredFile(path=relative, size_bytes=size, sha256=digest)

    def adopt(self, path: Path, *, sha256: str, filename: str) -> StoredFile:
        """Move a fully received file (already hashed) into the originals, read-only."""
        size = path.stat().st_size
        return self._finish(str(path), sha256, size, filename)

    def save_chunks(
        self,
        chunks: Iterable[bytes],
        filename: str,
        max_bytes: int,
        check_head: HeadCheck | None = None,
    ) -> StoredFile:
        """Stream chunks to a temporary file with a byte cap and a running sha256, then move
        it into the originals (or drop it when identical content is already stored).

        ``check_head`` sees the file's first bytes once all arrived and may raise to refuse
        the file; nothing is stored then."""
        receiver = _Receiver(self, filename, max_bytes, check_head)
        with receiver:
            for chunk in chunks:
                receiver.write(chunk)
        return receiver.finish()

    async def save_async_chunks(
        self,
        chunks: AsyncIterator[bytes],
        filename: str,
        max_bytes: int,
        check_head: HeadCheck | None = None,
    ) -> StoredFile:
        """``save_chunks`` for an asynchronous stream (a request body)."""
        receiver = _Receiver(self, filename, max_bytes, check_head)
        with receiver:
            async for chunk in chunks:
                receiver.write(chunk)
        # Off the event loop: into a bucket this sends the whole file, in parts.
        return await asyncio.to_thread(receiver.finish)


HeadCheck = Callable[[bytes], object]
HEAD_BYTES = 512  # what ``check_head`` sees of a file


class _Receiver:
    """One upload on its way to disk: a temporary file, a size cap and a running sha256."""

    def __init__(
        self, storage: Storage, filename: str, max_bytes: int, check_head: HeadCheck | None
    ) -> None:
        self.storage, self.filename, self.max_bytes = storage, filename, max_bytes
        self.check_head = check_head
        try:
            fd, self.tmp_name = storage._tmp()
        except OSError as exc:
            raise_if_full(exc, filename, 0)
            raise
        self.out = os.fdopen(fd, "wb")
        self.digest, self.size, self.head = hashlib.sha256(), 0, b""

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadTooLarge(too_large_message(self.filename, self.max_bytes))
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.digest.update(chunk)
        try:
            self.out.write(chunk)
        except OSError as exc:
            raise_if_full(exc, self.filename, self.size - len(chunk))
            raise
        UPLOAD_BYTES.inc(len(chunk))

    def __enter__(self) -> _Receiver:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            if self.check_head is not None:
                self.check_head(self.head)
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
        except OSError as error:
            self._discard()
            raise_if_full(error, self.filename, self.size)
            raise
        except BaseException:
            self._discard()
            raise

    def finish(self) -> StoredFile:
        """Move the complete, closed file into the originals; on failure nothing is kept."""
        try:
            return self.storage._finish(
                self.tmp_name, self.digest.hexdigest(), self.size, self.filename
            )
        except BaseException:
            Path(self.tmp_name).unlink(missing_ok=True)
            raise

    def _discard(self) -> None:
        with contextlib.suppress(OSError):  # buffered bytes that no longer fit: file goes anyway
            self.out.close()
        Path(self.tmp_name).unlink(missing_ok=True)


def raise_if_full(exc: OSError, filename: str, received: int) -> None:
    """Turn "no space left on device" (or over quota) into ``InsufficientStorage``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage(
            f"The server ran out of disk space while storing {filename} (after {received} "
            "bytes); nothing partial was kept as a video. Ask an admin to free space in the "
            "storage folder (SYLLABARY_STORAGE_DIR), then upload the file again: a resumable "
            "upload continues from the last byte the server kept.",
        ) from exc


def too_large_message(filename: str, max_bytes: int) -> str:
    return (
        f"{filename} is larger than the upload limit of {max_bytes / 1024**3:.1f} GiB. "
        "Trim or compress the video, or ask an admin to raise SYLLABARY_MAX_UPLOAD_BYTES."
    )


def storage_for(settings: Settings) -> Storage:
    """The storage the settings choose (``SYLLABARY_STORAGE``): a folder unless ``s3``."""
    if settings.storage == "s3":
        from app.core.s3storage import s3_storage  # boto3 only where a bucket is used

        return s3_storage(settings)
    return Storage(settings.files_dir)


def get_storage() -> Storage:
    from app.core.config import get_settings

    return storage_for(get_settings())
