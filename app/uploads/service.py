"""Resumable uploads: a file arrives in chunks (``Content-Range``), possibly over several
connections; bytes go straight to a partial file on disk (never held in memory), the sha256
runs as they arrive, and the last chunk turns the upload into a session.

A duplicate of a file already uploaded to the experiment is recognised by its sha256 and not
stored twice: the existing session is returned.

One request at a time writes an upload's bytes: each PUT holds an exclusive lock on
``uploads/<id>.lock`` (``flock``, shared by this host's web processes) and a second request for
the same upload meanwhile gets 409 instead of writing into the same file. With the last chunk
the upload becomes ``storing`` (committed) and its file is moved to ``uploads/<id>.storing``, a
name no request writes to, before it is stored (into a bucket: sent, which takes a while): a
client that timed out and asks again sees ``storing``, and the bytes being sent cannot change.
A failed store puts the file back and the upload is ``receiving`` again from the last chunk's
first byte; a request that died while storing is noticed (the lock is free) by the next request
for that upload, which does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import BadInput, Conflict, NotFound, TooLarge
from app.core.metrics import UPLOAD_BYTES
from app.core.storage import (
    HEAD_BYTES,
    Storage,
    StoredFile,
    UploadTooLarge,
    raise_if_full,
    too_large_message,
)
from app.experiments import service as experiments
from app.experiments.models import Experiment, VideoSession
from app.jobs import pipeline
from app.uploads.models import Upload, UploadStatus
from app.uploads.validation import check_video_head, clean_filename

CHUNK_SIZE = 8 * 1024 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

# Running hashes of uploads in progress in this process; rebuilt from the partial file when
# missing (a restart, or a chunk that went to another web process).
_hashers: dict[str, tuple[int, Any]] = {}
_hash_lock = threading.Lock()


def _partial(storage: Storage, upload_id: str) -> Path:
    return storage.abspath(f"uploads/{upload_id}.part")


def _storing(storage: Storage, upload_id: str) -> Path:
    """Where a complete file waits while it is stored: no request writes to this name."""
    return storage.abspath(f"uploads/{upload_id}.storing")


def _lock_file(storage: Storage, upload_id: str) -> Path:
    return storage.abspath(f"uploads/{upload_id}.lock")


@contextlib.contextmanager
def _writer_lock(storage: Storage, upload: Upload) -> Iterator[int | None]:
    """The right to write or store this upload's bytes: the lock file's descriptor, or None
    while another request holds it."""
    try:
        fd = os.open(_lock_file(storage, upload.id), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise_if_full(exc, upload.filename, upload.received_bytes)
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _busy(upload: Upload) -> Conflict:
    return Conflict(
        f"Another request is still writing or storing the bytes of {upload.filename} (upload "
        f"{upload.id}); nothing was written. Ask GET /api/uploads/{upload.id} in a few seconds "
        "and continue from its received_bytes once its status is receiving."
    )


def _not_receiving(upload: Upload) -> Conflict:
    if upload.status == UploadStatus.storing:
        return Conflict(
            f"Upload {upload.id} has all {upload.size_bytes} bytes of {upload.filename} and is "
            f"being stored; nothing was written. Ask GET /api/uploads/{upload.id} until its "
            "status is done (or receiving again, if storing failed: then resend from its "
            "received_bytes)."
        )
    return Conflict(f"Upload {upload.id} is already {upload.status}.")


def start(
    db: Session,
    *,
    experiment: Experiment,
    filename: str,
    size: int,
    subject: str | None,
    cohort: str | None,
    settings: Settings,
    storage: Storage,
) -> Upload:
    filename = clean_filename(filename)
    if size <= 0:
        check_video_head(b"", filename)  # an empty file is refused in the same words
    if size > settings.max_upload_bytes:
        raise TooLarge(too_large_message(filename, settings.max_upload_bytes))
    upload = Upload(
        id=uuid.uuid4().hex,
        experiment_id=experiment.id,
        filename=filename,
        size_bytes=size,
        received_bytes=0,
        subject=(subject or "").strip() or None,
        cohort=(cohort or "").strip() or None,
        status=UploadStatus.receiving,
    )
    db.add(upload)
    db.flush()
    path = _partial(storage, upload.id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        _lock_file(storage, upload.id).touch()
    except OSError as exc:
        raise_if_full(exc, filename, 0)
        raise
    return upload


def get_or_raise(db: Session, upload_id: str) -> Upload:
    upload = db.get(Upload, upload_id)
    if upload is None:
        raise NotFound(f"Upload {upload_id} does not exist (or has expired); start it again.")
    return upload


def reconcile(db: Session, upload: Upload, storage: Storage) -> Upload:
    """The upload as a client may resume it. While a request writes or stores its bytes, as
    that request left the row; else checked against the disk (see ``_reconcile_locked``)."""
    if upload.status not in (UploadStatus.receiving, UploadStatus.storing):
        return upload
    with _writer_lock(storage, upload) as lock:
        if lock is None:
            return upload
        db.commit()  # ends this session's transaction: the refresh sees the latest commit
        db.refresh(upload)
        _reconcile_locked(upload, storage)
        db.commit()
    return upload


def _reconcile_locked(upload: Upload, storage: Storage) -> None:
    """With the upload's lock held. A ``storing`` upload whose request is gone (it died while
    storing) gets its file back and is ``receiving`` from the last chunk's first byte. And
    after a crash the partial file may hold fewer bytes than recorded (chunks are synced to
    disk only at the end, for speed): resume from what is really on disk."""
    path = _partial(storage, upload.id)
    if upload.status == UploadStatus.storing:
        storing = _storing(storage, upload.id)
        if storing.exists():
            os.replace(storing, path)
        upload.status = UploadStatus.receiving
    if upload.status == UploadStatus.receiving:
        on_disk = path.stat().st_size if path.exists() else 0
        if on_disk < upload.received_bytes:
            upload.received_bytes = on_disk
            with _hash_lock:
                _hashers.pop(upload.id, None)


def parse_range(header: str | None, total: int) -> tuple[int, int]:
    """``Content-Range: bytes START-END/TOTAL`` → (start, end_exclusive)."""
    match = _RANGE.match((header or "").strip())
    if not match:
        raise BadInput("Send each chunk with a header 'Content-Range: bytes START-END/TOTAL'.")
    start, end, declared = (int(g) for g in match.groups())
    if declared != total:
        raise BadInput(f"Content-Range total {declared} differs from the upload's size {total}.")
    if end < start or end >= total:
        raise BadInput(f"Content-Range {start}-{end} is outside 0-{total - 1}.")
    return start, end + 1


def _hasher_at(path: Path, upload_id: str, offset: int) -> Any:
    with _hash_lock:
        held = _hashers.pop(upload_id, None)
    if held is not None and held[0] == offset:
        return held[1]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        remaining = offset
        while remaining > 0:
            block = fh.read(min(CHUNK_SIZE, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


async def receive_chunk(
    db: Session,
    *,
    upload: Upload,
    content_range: str | None,
    body: AsyncIterator[bytes],
    settings: Settings,
    storage: Storage,
) -> VideoSession | None:
    """Append one chunk. It must start where the received bytes end (ask GET to resume).

    Returns the session when this chunk completed the upload.
    """
    if upload.status != UploadStatus.receiving:
        raise _not_receiving(upload)
    with _writer_lock(storage, upload) as lock:
        if lock is None:
            raise _busy(upload)
        db.commit()  # ends this session's transaction: the refresh sees the latest commit
        db.refresh(upload)  # as the request that held the lock before left it
        if upload.status not in (UploadStatus.receiving, UploadStatus.storing):
            _lock_file(storage, upload.id).unlink(missing_ok=True)  # made again by this request
            raise _not_receiving(upload)
        _reconcile_locked(upload, storage)
        return await _receive_locked(
            db, lock=lock, upload=upload, content_range=content_range, body=body,
            settings=settings, storage=storage,
        )  # fmt: skip


async def _receive_locked(
    db: Session,
    *,
    lock: int,
    upload: Upload,
    content_range: str | None,
    body: AsyncIterator[bytes],
    settings: Settings,
    storage: Storage,
) -> VideoSession | None:
    if upload.size_bytes == 0:
        start, end = 0, 0
    else:
        start, end = parse_range(content_range, upload.size_bytes)
    if start != upload.received_bytes:
        raise Conflict(
            f"This chunk starts at byte {start} but the server has {upload.received_bytes} "
            f"bytes of {upload.filename}; continue from byte {upload.received_bytes}."
        )
    path = _partial(storage, upload.id)
    digest = _hasher_at(path, upload.id, start)
    written = 0
    # The first chunk's leading bytes must name a video container: refuse before storing more.
    head = b"" if start == 0 else None
    # Unbuffered: a full disk shows up on the write that hit it, not later on close.
    with path.open("r+b", buffering=0) as out:
        out.seek(start)
        out.truncate()
        try:
            async for data in body:
                written += len(data)
                if start + written > end:
                    out.truncate(start)
                    raise BadInput(
                        f"The chunk is longer than its Content-Range ({end - start} bytes)."
                    )
                if head is not None:
                    head += data[: HEAD_BYTES - len(head)]
                    if len(head) >= min(HEAD_BYTES, end):
                        _check_head(out, start, head, upload.filename)
                        head = None
                _write_all(out, data)
                digest.update(data)
                UPLOAD_BYTES.inc(len(data))
            if head is not None and start + written == end:
                _check_head(out, start, head, upload.filename)
            out.flush()
            if end == upload.size_bytes:
                os.fsync(out.fileno())  # the whole file is durable before it becomes a session
        except OSError as exc:
            # Disk full: drop this chunk's bytes so the client can resend it once space is freed.
            _truncate_quietly(out, start)
            with _hash_lock:
                _hashers.pop(upload.id, None)
            raise_if_full(exc, upload.filename, start)
            raise
    if start + written != end:
        with path.open("r+b") as out:
            out.truncate(start)
        raise BadInput(
            f"The chunk ended after {written} of {end - start} bytes (connection dropped?); "
            f"send it again from byte {start}."
        )
    if end < upload.size_bytes:
        upload.received_bytes = end
        with _hash_lock:
            _hashers[upload.id] = (end, digest)
        return None
    return await _finish(
        db, lock=lock, upload=upload, sha256=digest.hexdigest(), settings=settings,
        storage=storage,
    )  # fmt: skip


def _check_head(out: Any, start: int, head: bytes, filename: str) -> None:
    try:
        check_video_head(head, filename)
    except BadInput:
        out.truncate(start)
        raise


def _write_all(out: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


def _truncate_quietly(out: Any, start: int) -> None:
    with contextlib.suppress(OSError):
        out.truncate(start)


async def _finish(
    db: Session, *, lock: int, upload: Upload, sha256: str, settings: Settings, storage: Storage
) -> VideoSession:
    experiment = experiments.get_experiment_or_raise(db, upload.experiment_id)
    # Committed before anything moves: a client that asks again meanwhile is told "storing".
    # received_bytes stays at the last chunk's first byte, where a failed store resumes.
    upload.status = UploadStatus.storing
    db.commit()
    partial, path = _partial(storage, upload.id), _storing(storage, upload.id)
    os.replace(partial, path)  # out of reach of any request that writes chunks
    try:
        stored = await _store(lock, storage, path, partial, sha256, upload.filename, experiment, db)

        def adopt() -> StoredFile:
            if stored is not None:
                return stored
            try:  # a session with these bytes went away in between: store them after all
                return storage.adopt(path, sha256=sha256, filename=upload.filename)
            except UploadTooLarge as exc:  # pragma: no cover - checked at start
                raise TooLarge(str(exc)) from exc

        session, duplicate = record_session(
            db, experiment=experiment, sha256=sha256, store=adopt, filename=upload.filename,
            subject=upload.subject, cohort=upload.cohort, settings=settings,
        )  # fmt: skip
        if duplicate:
            path.unlink(missing_ok=True)
        upload.status = UploadStatus.duplicate if duplicate else UploadStatus.done
        upload.received_bytes = upload.size_bytes
        upload.session_id = session.id
        db.commit()
    except Exception:
        # Not stored: the bytes go back to the partial file and the client's retry of the last
        # chunk rewrites it and stores it again. (A cancelled request skips this: the store
        # goes on in its thread, holding the lock, and the next request recovers the upload.)
        db.rollback()
        with contextlib.suppress(OSError):
            if path.exists():
                os.replace(path, partial)
        with _hash_lock:
            _hashers.pop(upload.id, None)
        upload.status = UploadStatus.receiving
        with contextlib.suppress(Exception):
            db.commit()
        raise
    _lock_file(storage, upload.id).unlink(missing_ok=True)  # done: no request writes again
    return session


async def _store(
    lock: int,
    storage: Storage,
    path: Path,
    partial: Path,
    sha256: str,
    filename: str,
    experiment: Experiment,
    db: Session,
) -> StoredFile | None:
    """Store the complete file at ``path`` (into a bucket: send it), off the event loop, unless
    the experiment has these bytes already (None then). The thread holds the upload's lock
    until it ends, even if this request is cancelled meanwhile; when the store fails it puts
    the file back at ``partial`` first."""
    if _same_bytes(db, experiment, sha256) is not None:
        return None
    held = os.dup(lock)  # the same open file, so the same lock

    def store() -> StoredFile:
        try:
            return storage.adopt(path, sha256=sha256, filename=filename)
        except BaseException:
            with contextlib.suppress(OSError):
                if path.exists():
                    os.replace(path, partial)
            raise
        finally:
            os.close(held)

    return await asyncio.shield(asyncio.to_thread(store))


def record_session(
    db: Session,
    *,
    experiment: Experiment,
    sha256: str,
    store: Callable[[], StoredFile],
    filename: str,
    subject: str | None,
    cohort: str | None,
    settings: Settings,
) -> tuple[VideoSession, bool]:
    """The one writer of uploaded videos, for both upload paths: a new session (whose probe is
    queued), or the experiment's existing session with the same bytes and ``True`` (a
    duplicate: nothing stored twice, nothing queued). ``store`` puts the file in the originals
    and is called only for a new session."""
    existing = _same_bytes(db, experiment, sha256)
    if existing is not None:
        return existing, True
    session = experiments.create_session(
        db,
        experiment=experiment,
        stored=store(),
        filename=filename,
        subject_name=subject,
        cohort_name=cohort,
    )
    pipeline.after_upload(db, session=session, settings=settings)
    return session, False


def _same_bytes(db: Session, experiment: Experiment, sha256: str) -> VideoSession | None:
    """The experiment's session whose video has these bytes, if any."""
    return db.scalar(
        select(VideoSession).where(
            VideoSession.experiment_id == experiment.id, VideoSession.sha256 == sha256
        )
    )
