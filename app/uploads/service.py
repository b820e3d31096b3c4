"""Resumable uploads: a file arrives in chunks (``Content-Range``), possibly over several
connections; bytes go straight to a partial file on disk (never held in memory), the sha256
runs as they arrive, and the last chunk turns the upload into a session.

A duplicate of a file already uploaded to the experiment is recognised by its sha256 and not
stored twice: the existing session is returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
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
    except OSError as exc:
        raise_if_full(exc, filename, 0)
        raise
    return upload


def get_or_raise(db: Session, upload_id: str) -> Upload:
    upload = db.get(Upload, upload_id)
    if upload is None:
        raise NotFound(f"Upload {upload_id} does not exist (or has expired); start it again.")
    return upload


def reconcile(upload: Upload, storage: Storage) -> Upload:
    """After a crash the partial file may hold fewer bytes than recorded (chunks are synced to
    disk only at the end, for speed): resume from what is really on disk."""
    if upload.status == UploadStatus.receiving:
        path = _partial(storage, upload.id)
        on_disk = path.stat().st_size if path.exists() else 0
        if on_disk < upload.received_bytes:
            upload.received_bytes = on_disk
            with _hash_lock:
                _hashers.pop(upload.id, None)
    return upload


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
        raise Conflict(f"Upload {upload.id} is already {upload.status}.")
    reconcile(upload, storage)
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
    upload.received_bytes = end
    if end < upload.size_bytes:
        with _hash_lock:
            _hashers[upload.id] = (end, digest)
        return None
    return await _finish(
        db, upload=upload, sha256=digest.hexdigest(), settings=settings, storage=storage
    )


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
    db: Session, *, upload: Upload, sha256: str, settings: Settings, storage: Storage
) -> VideoSession:
    experiment = experiments.get_experiment_or_raise(db, upload.experiment_id)
    path = _partial(storage, upload.id)
    # Stored before the session is recorded, off the event loop: into a bucket this sends the
    # whole file. A duplicate of the experiment's own is not stored (and dropped below).
    stored: StoredFile | None = None
    if _same_bytes(db, experiment, sha256) is None:
        stored = await storage.adopt_async(path, sha256=sha256, filename=upload.filename)

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
    upload.session_id = session.id
    return session


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
