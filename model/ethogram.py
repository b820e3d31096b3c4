"""Ethogram and bouts CSV (the column contract in architecture.md), streamed in chunks.

Ethogram: one row per decoded frame, ``frame,time_s,syllable,syllable_name,probability`` then
the per-frame scalars and the quality flag. Bouts: ``start_frame,end_frame,start_s,end_s,
duration_s,syllable,syllable_name`` with ``end_frame`` exclusive. BORIS: the bouts as BORIS's
tabular events export lays them out (a START and a STOP state event per bout), for labs whose
scripts read BORIS files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

ETHOGRAM_COLUMNS = ("frame", "time_s", "syllable", "syllable_name", "probability")
BOUT_COLUMNS = (
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "syllable",
    "syllable_name",
)

BORIS_COLUMNS = (
    "Observation id",
    "Observation date",
    "Media file name",
    "FPS",
    "Subject",
    "Behavior",
    "Behavioral category",
    "Behavior type",
    "Time",
    "Image index",
    "Comment",
)


def bouts_from_labels(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of one label as ``(start, end_exclusive, label)``: the one labels -> bouts
    function of the project (segmentation, fit summary, metrics, synthetic truth)."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


def bout_lengths(labels: np.ndarray) -> np.ndarray:
    """(n_bouts,) length in frames of each bout of ``labels``."""
    return np.array([e - s for s, e, _ in bouts_from_labels(labels)], dtype=np.int64)


def _name(names: Mapping[int, str] | Sequence[str], k: int) -> str:
    try:
        return str(names[k]) or f"syllable {k}"
    except (KeyError, IndexError):
        return f"syllable {k}"


def bout_end_times(times: np.ndarray, ends: np.ndarray, fps: float) -> np.ndarray:
    """Time at which each bout ends: the next frame's time, or one frame after the last."""
    times = np.asarray(times, dtype=np.float64)
    after_last = times[-1] + (1.0 / fps if fps > 0 else 0.0)
    padded = np.append(times, after_last)
    return padded[np.asarray(ends, dtype=np.int64)]


def ethogram_chunks(
    *,
    syllable: np.ndarray,
    probability: np.ndarray,
    times: np.ndarray,
    names: Mapping[int, str] | Sequence[str],
    scalars: Mapping[str, np.ndarray] | None = None,
    quality: Sequence[str] | None = None,
    chunk_rows: int = 5000,
) -> Iterator[str]:
    """Yield the ethogram CSV text in chunks of ``chunk_rows`` rows (header first)."""
    scalars = dict(scalars or {})
    header = [*ETHOGRAM_COLUMNS, *scalars, *(["quality"] if quality is not None else [])]
    yield ",".join(header) + "\r\n"
    n = len(syllable)
    label_names = {int(k): _name(names, int(k)) for k in np.unique(syllable)}
    for start in range(0, n, chunk_rows):
        buf = io.StringIO()
        writer = csv.writer(buf)
        stop = min(n, start + chunk_rows)
        for i in range(start, stop):
            k = int(syllable[i])
            row: list[object] = [
                i,
                f"{times[i]:.6f}",
                k,
                label_names[k],
                f"{probability[i]:.4f}",
            ]
            row.extend(f"{scalars[c][i]:.4f}" for c in scalars)
            if quality is not None:
                row.append(quality[i])
            writer.writerow(row)
        yield buf.getvalue()


def bouts_chunks(
    *,
    bouts: Sequence[tuple[int, int, int]],
    times: np.ndarray,
    fps: float,
    names: Mapping[int, str] | Sequence[str],
    chunk_rows: int = 5000,
) -> Iterator[str]:
    """Yield the bouts CSV text (header first). ``bouts``: (start, end_exclusive, syllable)."""
    yield ",".join(BOUT_COLUMNS) + "\r\n"
    yield from _bout_chunks(
        bouts, times, fps, chunk_rows,
        lambda s, e, k, t0, t1: [
            [s, e, f"{t0:.6f}", f"{t1:.6f}", f"{t1 - t0:.6f}", k, _name(names, k)]
        ],
    )  # fmt: skip


def _bout_chunks(
    bouts: Sequence[tuple[int, int, int]],
    times: np.ndarray,
    fps: float,
    chunk_rows: int,
    rows: Callable[[int, int, int, float, float], list[list[object]]],
) -> Iterator[str]:
    """CSV text of ``rows(start, end, syllable, start_s, end_s)`` for every bout, in chunks of
    ``chunk_rows`` bouts."""
    if not bouts:
        return
    arr = np.asarray(bouts, dtype=np.int64)
    ends_s = bout_end_times(times, arr[:, 1], fps)
    for start in range(0, len(arr), chunk_rows):
        buf = io.StringIO()
        writer = csv.writer(buf)
        for j in range(start, min(len(arr), start + chunk_rows)):
            s, e, k = (int(v) for v in arr[j])
            writer.writerows(rows(s, e, k, float(times[s]), float(ends_s[j])))
        yield buf.getvalue()


def boris_chunks(
    *,
    bouts: Sequence[tuple[int, int, int]],
    times: np.ndarray,
    fps: float,
    names: Mapping[int, str] | Sequence[str],
    observation: str,
    media: str,
    subject: str,
    date: str = "",
    chunk_rows: int = 5000,
) -> Iterator[str]:
    """Yield the bouts as BORIS tabular events (header first): per bout a START row at its first
    frame and a STOP row when the next frame begins; the syllable's name is the behaviour."""
    yield ",".join(BORIS_COLUMNS) + "\r\n"
    common = [observation, date, media, f"{fps:g}", subject]
    yield from _bout_chunks(
        bouts, times, fps, chunk_rows,
        lambda s, e, k, t0, t1: [
            [*common, _name(names, k), f"syllable {k}", kind, f"{t:.6f}", frame, ""]
            for kind, t, frame in (("START", t0, s), ("STOP", t1, e))
        ],
    )  # fmt: skip
