"""A lab's own behaviour labels: reading them, and how well syllables agree with them.

Three file layouts are read, recognised by their header:

- ``frame,behaviour``: one row per scored frame (0-based frame numbers);
- ``start_s,end_s,behaviour``: one row per scored interval, ``[start_s, end_s)`` in seconds;
- BORIS's tabular events export (CSV or TSV, BORIS 7 or 8): state events as START/STOP pairs
  at ``Time`` seconds; point events have no duration and are left out (counted in ``notes``).

Frames nobody scored are ``-1`` and take no part in any score. Syllabary compares one behaviour
per frame, so overlapping behaviours are refused with the lines that overlap: a BORIS ethogram
of mutually exclusive behaviours exports as is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model.metrics import ari, nmi

UNSCORED = -1
MAX_BEHAVIOURS = 200


class AnnotationError(ValueError):
    """A label file that cannot be read; says where (line, column) and what to change."""

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None):
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}"
            if column is not None:
                where += f", column {column!r}"
            where += ": "
        super().__init__(where + message)
        self.detail = message


@dataclass(frozen=True)
class HumanLabels:
    """One behaviour per frame, as read from a label file."""

    behaviours: list[str]  # label k is behaviours[k]
    labels: np.ndarray  # (T,) int64; UNSCORED where nobody scored the frame
    format: str  # "frames", "intervals" or "boris"
    notes: list[str] = field(default_factory=list)

    @property
    def scored_frames(self) -> int:
        return int(np.count_nonzero(self.labels >= 0))


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:200]:
            return data.decode("utf-16")  # "Unicode text" as spreadsheet programs save it
        return data.decode("cp1252")  # a spreadsheet's CSV in Western Europe
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            "the file is not text (UTF-8, UTF-16 or Windows-1252): export the labels as CSV or TSV."
        ) from exc


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) per non-empty row; the delimiter is sniffed from the text."""
    sample = "\n".join(text.splitlines()[:60])
    delimiter = max(("\t", ";", ","), key=sample.count) if sample else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    out: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if any(cells):
                out.append((reader.line_num, cells))
    except csv.Error as exc:
        raise AnnotationError(f"the file is not valid CSV ({exc}).", line=reader.line_num) from exc
    return out


def _norm(cell: str) -> str:
    return cell.strip().lower().replace("behavior", "behaviour")


def _number(cells: list[str], index: int, line: int, column: str) -> float:
    raw = cells[index] if index < len(cells) else ""
    try:
        value = float(raw)
    except ValueError:
        raise AnnotationError(
            f"{raw!r} is not a number of seconds.", line=line, column=column
        ) from None
    if not np.isfinite(value):
        raise AnnotationError(f"{raw!r} is not a finite number.", line=line, column=column)
    return value


class _Vocabulary:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: dict[str, int] = {}

    def id(self, name: str, line: int, column: str) -> int:
        if name not in self.ids:
            if len(self.names) >= MAX_BEHAVIOURS:
                raise AnnotationError(
                    f"more than {MAX_BEHAVIOURS} different behaviours; is this the right column?",
                    line=line,
                    column=column,
                )
            self.ids[name] = len(self.names)
            self.names.append(name)
        return self.ids[name]


def parse_annotations(data: bytes | str, *, times: np.ndarray) -> HumanLabels:
    """Read a label file for a session whose frames are at ``times`` (seconds, one per frame).

    Raises :class:`AnnotationError` naming the line and column of the first problem.
    """
    times = np.asarray(times, dtype=np.float64)
    rows = _rows(_decode(data))
    if not rows:
        raise AnnotationError("the file is empty: it needs a header and at least one row.")
    for i, (_line, cells) in enumerate(rows[:60]):
        header = [_norm(c) for c in cells]
        if (
            "behaviour" in header
            and "time" in header
            and ("behaviour type" in header or "status" in header)
        ):
            return _boris(rows[i], rows[i + 1 :], times)
    line, cells = rows[0]
    header = [_norm(c) for c in cells]
    if "frame" in header and _label_column(header) is not None:
        return _frames(header, rows[1:], times)
    if {"start_s", "end_s"} <= set(header) and _label_column(header) is not None:
        return _intervals(header, rows[1:], times)
    raise AnnotationError(
        f"the header {', '.join(cells)!r} is not one Syllabary reads. Use 'frame,behaviour' "
        "(one row per frame), 'start_s,end_s,behaviour' (one row per interval), or BORIS's "
        "tabular events export.",
        line=line,
    )


def _label_column(header: list[str]) -> int | None:
    # A behaviour's name beats its number (synthetic truth files carry both).
    for name in ("behaviour_name", "behaviour", "label"):
        if name in header:
            return header.index(name)
    return None


def _frames(header: list[str], rows: list[tuple[int, list[str]]], times: np.ndarray) -> HumanLabels:
    n = len(times)
    at_frame, at_label = header.index("frame"), _label_column(header)
    assert at_label is not None
    labels = np.full(n, UNSCORED, dtype=np.int64)
    first_line = np.zeros(n, dtype=np.int64)
    vocabulary = _Vocabulary()
    for line, cells in rows:
        raw = cells[at_frame] if at_frame < len(cells) else ""
        try:
            frame = int(raw)
        except ValueError:
            raise AnnotationError(
                f"{raw!r} is not a frame number (0, 1, 2, ...).", line=line, column="frame"
            ) from None
        if not 0 <= frame < n:
            raise AnnotationError(
                f"frame {frame} is outside this video, which has frames 0 to {n - 1}.",
                line=line,
                column="frame",
            )
        name = cells[at_label] if at_label < len(cells) else ""
        if not name:
            continue  # an unscored frame, said explicitly
        k = vocabulary.id(name, line, header[at_label])
        if labels[frame] != UNSCORED and labels[frame] != k:
            raise AnnotationError(
                f"frame {frame} is also labelled {vocabulary.names[labels[frame]]!r} on line "
                f"{first_line[frame]}; give each frame one behaviour.",
                line=line,
                column="frame",
            )
        labels[frame], first_line[frame] = k, line
    return _done(vocabulary, labels, "frames", [])


def _intervals(
    header: list[str], rows: list[tuple[int, list[str]]], times: np.ndarray
) -> HumanLabels:
    at_start, at_end, at_label = (
        header.index("start_s"),
        header.index("end_s"),
        _label_column(header),
    )
    assert at_label is not None
    spans = []
    for line, cells in rows:
        start = _number(cells, at_start, line, "start_s")
        end = _number(cells, at_end, line, "end_s")
        if end <= start:
            raise AnnotationError(
                f"the interval ends ({end} s) before it starts ({start} s).",
                line=line,
                column="end_s",
            )
        name = cells[at_label] if at_label < len(cells) else ""
        if not name:
            raise AnnotationError("the behaviour is empty.", line=line, column=header[at_label])
        spans.append((start, end, name, line))
    return _from_spans(spans, times, "intervals", [])


def _boris(
    header_row: tuple[int, list[str]], rows: list[tuple[int, list[str]]], times: np.ndarray
) -> HumanLabels:
    header = [_norm(c) for c in header_row[1]]
    at_time, at_behaviour = header.index("time"), header.index("behaviour")
    at_type = (
        header.index("behaviour type") if "behaviour type" in header else header.index("status")
    )
    type_column = header_row[1][at_type]
    at_subject = header.index("subject") if "subject" in header else None
    subjects = {
        cells[at_subject]
        for _line, cells in rows
        if at_subject is not None and at_subject < len(cells)
    } - {""}
    if len(subjects) > 1:
        raise AnnotationError(
            f"the file scores {len(subjects)} subjects ({', '.join(sorted(subjects))}); "
            "a session is one animal: export one subject per file."
        )
    open_events: dict[str, tuple[float, int]] = {}
    spans = []
    points = 0
    for line, cells in rows:
        kind = (cells[at_type] if at_type < len(cells) else "").upper()
        behaviour = cells[at_behaviour] if at_behaviour < len(cells) else ""
        if kind == "POINT":
            points += 1
            continue
        if kind not in ("START", "STOP"):
            raise AnnotationError(
                f"{kind or 'an empty cell'!r} is not START, STOP or POINT.",
                line=line,
                column=type_column,
            )
        if not behaviour:
            raise AnnotationError("the behaviour is empty.", line=line, column="Behavior")
        t = _number(cells, at_time, line, "Time")
        if kind == "START":
            if behaviour in open_events:
                raise AnnotationError(
                    f"{behaviour!r} starts again at {t} s before it stopped (started on line "
                    f"{open_events[behaviour][1]}).",
                    line=line,
                    column=type_column,
                )
            open_events[behaviour] = (t, line)
        else:
            if behaviour not in open_events:
                raise AnnotationError(
                    f"{behaviour!r} stops at {t} s but never started.",
                    line=line,
                    column=type_column,
                )
            start, start_line = open_events.pop(behaviour)
            if t < start:
                raise AnnotationError(
                    f"{behaviour!r} stops at {t} s, before it started ({start} s, line "
                    f"{start_line}).",
                    line=line,
                    column="Time",
                )
            if t > start:
                spans.append((start, t, behaviour, line))
    if open_events:
        behaviour, (start, line) = next(iter(open_events.items()))
        raise AnnotationError(
            f"{behaviour!r} starts at {start} s and never stops: add its STOP event in BORIS "
            "and export again.",
            line=line,
        )
    notes = [f"{points} point events have no duration and were left out."] if points else []
    return _from_spans(spans, times, "boris", notes)


def _from_spans(
    spans: list[tuple[float, float, str, int]], times: np.ndarray, fmt: str, notes: list[str]
) -> HumanLabels:
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    duration = float(times[-1]) + step if len(times) else 0.0  # the last frame's end
    # Seconds written with few decimals miss their frame by a hair (2/3 s as 0.667): a time up
    # to a quarter of a frame's interval after a frame counts as that frame's.
    slack = 0.25 * step
    labels = np.full(len(times), UNSCORED, dtype=np.int64)
    owner = np.zeros(len(times), dtype=np.int64)  # the line that labelled each frame
    vocabulary = _Vocabulary()
    for start, end, name, line in spans:
        if start >= duration:
            raise AnnotationError(
                f"the interval starts at {start} s, after the video ends ({duration:.2f} s). "
                "Is this the file of another video?",
                line=line,
            )
        k = vocabulary.id(name, line, "behaviour")
        lo, hi = np.searchsorted(times, [start - slack, end - slack], side="left")
        taken = labels[lo:hi] != UNSCORED
        if taken.any():
            other = int(owner[lo:hi][taken][0])
            raise AnnotationError(
                f"{name!r} ({start}–{end} s) overlaps the behaviour labelled on line {other}; "
                "Syllabary compares one behaviour per frame, so make behaviours mutually "
                "exclusive.",
                line=line,
            )
        labels[lo:hi], owner[lo:hi] = k, line
    return _done(vocabulary, labels, fmt, notes)


def _done(vocabulary: _Vocabulary, labels: np.ndarray, fmt: str, notes: list[str]) -> HumanLabels:
    if not np.any(labels >= 0):
        raise AnnotationError(
            "no frame of this video is labelled: check that the file belongs to this session."
        )
    return HumanLabels(behaviours=vocabulary.names, labels=labels, format=fmt, notes=notes)


@dataclass(frozen=True)
class Agreement:
    """How syllables agree with a lab's labels over the frames both describe."""

    frames: int  # frames scored by people and segmented by the model
    syllables: list[int]  # the contingency table's rows
    behaviours: list[str]  # its columns
    contingency: np.ndarray  # (syllables, behaviours) frame counts
    nmi: float
    ari: float
    mapping: dict[int, str]  # each syllable -> the behaviour it overlaps most
    accuracy: float  # share of frames whose syllable maps to their behaviour
    f1: dict[str, float]  # per behaviour under that mapping
    boundary_tolerance: int  # frames either side
    boundary_agreement: float  # share of human boundaries with a syllable boundary near
    boundary_chance: float  # the same share for a boundary placed at random
    human_boundaries: int


def agreement(
    sessions: Sequence[tuple[np.ndarray, np.ndarray]],
    behaviours: Sequence[str],
    *,
    tolerance: int,
) -> Agreement:
    """Agreement of syllables with human labels, pooled over sessions.

    ``sessions`` holds ``(syllables, labels)`` per session: per-frame syllable ids (negative
    where unsegmented) and behaviour ids into ``behaviours`` (:data:`UNSCORED` where nobody
    scored). Frames missing either are left out. The mapping is many-to-one (several syllables
    may name one behaviour: a model splits what people lump). Boundary agreement counts human
    behaviour changes with a syllable change within ``tolerance`` frames; its chance level is the
    share of scored frame pairs that have one, which grows with how often syllables change.
    """
    kept_s, kept_b = [], []
    hits = boundaries = near = pairs = 0
    for syllable, label in sessions:
        syllable, label = np.asarray(syllable), np.asarray(label)
        if syllable.shape != label.shape:
            raise ValueError(f"{syllable.size} syllable frames but {label.size} labelled frames.")
        both = (syllable >= 0) & (label >= 0)
        kept_s.append(syllable[both])
        kept_b.append(label[both])
        if syllable.size < 2:
            continue
        # A change before frame i, between two segmented frames: a gap in the segmentation (no
        # mouse) is no syllable boundary.
        segmented = (syllable[1:] >= 0) & (syllable[:-1] >= 0)
        change = np.flatnonzero(segmented & (syllable[1:] != syllable[:-1])) + 1
        close = np.zeros(syllable.size, dtype=bool)
        for d in range(-tolerance, tolerance + 1):
            idx = change + d
            close[idx[(idx >= 0) & (idx < syllable.size)]] = True
        scored_pair = both[1:] & both[:-1]
        human = np.flatnonzero(scored_pair & (label[1:] != label[:-1])) + 1
        boundaries += human.size
        hits += int(close[human].sum())
        pairs += int(scored_pair.sum())
        near += int(close[1:][scored_pair].sum())
    s = np.concatenate(kept_s) if kept_s else np.zeros(0, dtype=np.int64)
    b = np.concatenate(kept_b) if kept_b else np.zeros(0, dtype=np.int64)
    if s.size == 0:
        raise ValueError("no frame is both labelled and segmented.")
    rows, s_inv = np.unique(s, return_inverse=True)
    cols, b_inv = np.unique(b, return_inverse=True)
    table = np.zeros((rows.size, cols.size), dtype=np.int64)
    np.add.at(table, (s_inv, b_inv), 1)
    best = table.argmax(axis=1)  # per syllable, its behaviour (column index)
    correct = int(table[np.arange(rows.size), best].sum())
    f1: dict[str, float] = {}
    for j, k in enumerate(cols):
        true_positive = int(table[best == j, j].sum())
        predicted = int(table[best == j].sum())
        actual = int(table[:, j].sum())
        f1[behaviours[k]] = 2 * true_positive / (predicted + actual) if predicted + actual else 0.0
    return Agreement(
        frames=int(s.size),
        syllables=[int(r) for r in rows],
        behaviours=[behaviours[k] for k in cols],
        contingency=table,
        nmi=nmi(b, s),
        ari=ari(b, s),
        mapping={int(r): behaviours[cols[best[i]]] for i, r in enumerate(rows)},
        accuracy=correct / s.size,
        f1=f1,
        boundary_tolerance=tolerance,
        boundary_agreement=hits / boundaries if boundaries else 0.0,
        boundary_chance=near / pairs if pairs else 0.0,
        human_boundaries=boundaries,
    )
