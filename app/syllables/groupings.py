"""Groupings: a lab's decision that several syllables of a frozen model are one behaviour
("groom" = syllables 3 + 7). A grouping never changes the model or a stored segmentation; it
changes what every page, export and comparison counts as one unit. A group is shown under the
index of its smallest syllable, so everything downstream keeps working on syllable indices;
adjacent bouts of one group become one bout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import BadInput, Conflict
from app.syllables.models import SyllableGrouping, SyllableModel


@dataclass(frozen=True)
class Grouping:
    """The grouping in force for a model: version and groups (name, sorted syllables)."""

    version: int
    groups: list[tuple[str, list[int]]]

    def lookup(self, states: int) -> np.ndarray:
        """(states,) each syllable's unit: itself, or its group's smallest syllable."""
        table = np.arange(states, dtype=np.int64)
        for _name, members in self.groups:
            table[[m for m in members if m < states]] = min(members)
        return table

    def names(self) -> dict[int, str]:
        """A group's unit index -> the group's name."""
        return {min(members): name for name, members in self.groups}

    def describe(self) -> str:
        """In words, for methods text: 'groom' = syllables 3 + 7; ..."""
        return "; ".join(
            f"'{name}' = syllables {' + '.join(map(str, members))}" for name, members in self.groups
        )


def group_labels(labels: np.ndarray, grouping: Grouping | None, states: int) -> np.ndarray:
    """Per-frame syllables as units (negative labels, unsegmented frames, stay)."""
    if grouping is None:
        return labels
    table = grouping.lookup(max(states, int(labels.max(initial=-1)) + 1))
    return np.where(labels >= 0, table[np.clip(labels, 0, None)], labels)


def group_bouts(bouts: np.ndarray, grouping: Grouping | None, states: int, column: int = 2):
    """Bouts (rows of start_frame, end_frame, syllable[, start_s, end_s]) as units: the
    syllable column mapped, and adjacent bouts of one unit joined (the first bout's start, the
    last bout's end_frame and, with five columns, its end_s)."""
    if grouping is None or len(bouts) == 0:
        return bouts
    out = np.array(bouts, copy=True)
    syllable = out[:, column].astype(np.int64)
    out[:, column] = group_labels(syllable, grouping, states)
    same = (out[1:, column] == out[:-1, column]) & (out[1:, 0] == out[:-1, 1])
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    ends = np.concatenate([starts[1:], [len(out)]]) - 1
    merged = out[starts].copy()
    merged[:, 1] = out[ends, 1]
    if out.shape[1] > 4:  # (start_frame, end_frame, syllable, start_s, end_s)
        merged[:, 4] = out[ends, 4]
    return merged


def unit_names(names: dict[int, str], grouping: Grouping | None) -> dict[int, str]:
    """Syllable names with each group's name on its unit index."""
    return names if grouping is None else {**names, **grouping.names()}


def current(db: Session, model_id: int) -> Grouping | None:
    row = db.scalar(
        select(SyllableGrouping)
        .where(SyllableGrouping.model_id == model_id, SyllableGrouping.undone_at.is_(None))
        .order_by(SyllableGrouping.version.desc())
        .limit(1)
    )
    if row is None or not row.groups:
        return None
    return Grouping(row.version, [(g["name"], list(g["syllables"])) for g in row.groups])


def history(db: Session, model_id: int) -> list[SyllableGrouping]:
    return list(
        db.scalars(
            select(SyllableGrouping)
            .where(SyllableGrouping.model_id == model_id)
            .order_by(SyllableGrouping.version.desc())
        )
    )


def save(db: Session, model: SyllableModel, groups: list[dict[str, Any]]) -> SyllableGrouping:
    """A new version with these groups (an empty list ungroups everything)."""
    seen: dict[int, str] = {}
    names: set[str] = set()
    clean = []
    for g in groups:
        name = str(g.get("name", "")).strip()[:200]
        members = sorted({int(k) for k in g.get("syllables", [])})
        if not name:
            raise BadInput("Every group needs a name, e.g. 'groom'.")
        if name in names:
            raise BadInput(f"Two groups are called {name!r}; give each group its own name.")
        if len(members) < 2:
            raise BadInput(f"The group {name!r} needs at least two syllables to merge.")
        for k in members:
            if not 0 <= k < model.states:
                raise BadInput(
                    f"Syllable {k} is not a syllable of this model (0 to {model.states - 1})."
                )
            if k in seen:
                raise BadInput(f"Syllable {k} is in both {seen[k]!r} and {name!r}; choose one.")
            seen[k] = name
        names.add(name)
        clean.append({"name": name, "syllables": members})
    last = db.scalar(
        select(func.max(SyllableGrouping.version)).where(SyllableGrouping.model_id == model.id)
    )
    row = SyllableGrouping(model_id=model.id, version=(last or 0) + 1, groups=clean)
    db.add(row)
    db.flush()
    return row


def undo(db: Session, model: SyllableModel) -> Grouping | None:
    """Mark the grouping in force undone; the one before it (if any) is in force again."""
    row = db.scalar(
        select(SyllableGrouping)
        .where(SyllableGrouping.model_id == model.id, SyllableGrouping.undone_at.is_(None))
        .order_by(SyllableGrouping.version.desc())
        .limit(1)
    )
    if row is None:
        raise Conflict("This model has no grouping to undo.")
    row.undone_at = utcnow()
    db.flush()
    return current(db, model.id)


@dataclass(frozen=True)
class Suggestion:
    syllables: tuple[int, int]
    distance: float
    reason: str


def suggest(
    usage: dict[int, float],
    transitions: np.ndarray,
    kinematics: dict[str, dict[int, float]],
    durations: dict[int, float],
    *,
    unit: str,
    grouped: set[int] = frozenset(),  # type: ignore[assignment]
    limit: int = 5,
    min_usage: float = 0.01,
) -> list[Suggestion]:
    """Pairs of syllables that may be one behaviour, closest first: alike in speed, turning,
    body length and bout duration (each on a log scale), and often following one another.
    Syllables under ``min_usage`` of the frames, or already grouped, are left out."""
    candidates = [k for k, u in usage.items() if u >= min_usage and k not in grouped]
    rows = transitions.sum(axis=1)
    out = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1 :]:
            parts, words = [], []
            for key, label, fmt in (
                ("speed", "speed", f"{{:.2g}} {unit}/s"),
                ("turning_deg_s", "turning", "{:.0f}°/s"),
                ("body_length", "body length", f"{{:.2g}} {unit}"),
            ):
                va, vb = kinematics.get(key, {}).get(a), kinematics.get(key, {}).get(b)
                if va is None or vb is None:
                    continue
                parts.append(abs(math.log((abs(va) + 1e-3) / (abs(vb) + 1e-3))))
                words.append(f"{label} {fmt.format(va)} vs {fmt.format(vb)}")
            da, db_ = durations.get(a), durations.get(b)
            if da and db_:
                parts.append(abs(math.log(da / db_)))
                words.append(f"median bout {da:.2f} vs {db_:.2f} s")
            if not parts:
                continue
            follow = max(
                transitions[a, b] / rows[a] if rows[a] else 0.0,
                transitions[b, a] / rows[b] if rows[b] else 0.0,
            )
            # Alike in every measure counts most; following each other often halves the gap.
            distance = float(np.mean(parts)) * (1.0 - 0.5 * follow)
            if follow >= 0.1:
                words.append(f"one follows the other in {follow:.0%} of its bouts")
            out.append(Suggestion((a, b), distance, "; ".join(words)))
    out.sort(key=lambda s: s.distance)
    return out[:limit]
