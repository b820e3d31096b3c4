"""Job handlers: thin glue from a job row to a service or engine function.

Each handler does its slow work outside any transaction and returns a writer that stores the
result (see ``worker.runner``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.storage import Storage
from app.experiments import service as experiments
from app.jobs.models import JobKind
from model.video import probe
from worker.runner import Handler, JobContext, PermanentJobError, ResultWriter


def _session_file(ctx: JobContext) -> tuple[str, str]:
    """The session's stored original (relative path) and the name the user uploaded it as."""
    from app.core.db import session_factory

    if ctx.session_id is None:
        raise PermanentJobError("this job is not attached to a session")
    with session_factory(ctx.engine)() as db:
        session = experiments.get_session_or_raise(db, ctx.session_id)
        return session.original_path, session.original_filename


def handle_probe(ctx: JobContext) -> ResultWriter:
    relative, filename = _session_file(ctx)
    path = Storage(ctx.settings.files_dir).abspath(relative)
    ctx.progress(0.0, "reading the video")
    expected = _expected_frames(path)

    def on_frames(n: int) -> None:
        fraction = min(0.99, n / expected) if expected else 0.5
        ctx.progress(fraction, f"decoded {n} frames")

    info = probe(path, name=filename, progress=on_frames).as_dict()
    session_id = ctx.session_id
    assert session_id is not None

    def write(db: Session) -> dict[str, object]:
        experiments.apply_probe(db, session_id=session_id, info=info)
        return info

    return write


def _expected_frames(path: object) -> int:
    """Frame count from container metadata, only to scale the progress bar."""
    import av

    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames or 0)
    except Exception:
        return 0


HANDLERS: dict[str, Handler] = {JobKind.probe: handle_probe}
