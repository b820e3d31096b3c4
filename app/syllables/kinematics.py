"""What the mouse's body does in each syllable: speed, turning rate and body length, pooled over
every session a model segmented, in cm when every session has a scale (pixels per cm), else
in body lengths (each animal's typical size, :func:`model.body.body_scale`, which does not move
with how often it rears or grooms), else in video pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.storage import Storage
from app.experiments.models import Experiment, VideoSession
from app.syllables import service as syllables
from app.syllables.models import Segmentation, SyllableModel

if TYPE_CHECKING:
    from model.features import Features

# Frames per syllable kept for the medians: enough for three significant digits, bounded
# memory for hours of video.
SAMPLE = 20_000


@dataclass(frozen=True)
class SessionMotion:
    """One session's per-frame motion, already in the table's length unit."""

    syllable: np.ndarray  # (T,) int, -1 unsegmented
    speed: np.ndarray  # (T,) length unit / s
    turning: np.ndarray  # (T,) rad / s
    body_length: np.ndarray  # (T,) length unit


@dataclass
class SyllableKinematics:
    """Medians per syllable; ``unit`` is "cm", "body lengths" or "px"."""

    unit: str
    speed: dict[int, float] = field(default_factory=dict)  # unit / s
    turning_deg_s: dict[int, float] = field(default_factory=dict)  # |turning rate|, deg / s
    body_length: dict[int, float] = field(default_factory=dict)  # unit
    note: str = ""


def summarise(sessions: Sequence[SessionMotion], unit: str, *, seed: int = 0) -> SyllableKinematics:
    """Per syllable, the median over its frames (sampled evenly past ``SAMPLE`` frames) of
    speed, absolute turning rate and body length; frames without tracking are left out."""
    out = SyllableKinematics(unit=unit)
    if not sessions:
        return out
    labels = np.concatenate([s.syllable for s in sessions])
    columns = {
        "speed": np.concatenate([s.speed for s in sessions]),
        "turning": np.abs(np.concatenate([s.turning for s in sessions])),
        "body_length": np.concatenate([s.body_length for s in sessions]),
    }
    for k in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == k)
        if rows.size > SAMPLE:
            rows = rows[:: math.ceil(rows.size / SAMPLE)]
        for name, values in columns.items():
            v = values[rows]
            v = v[np.isfinite(v)]
            if not v.size:
                continue
            median = float(np.median(v))
            if name == "speed":
                out.speed[int(k)] = median
            elif name == "turning":
                out.turning_deg_s[int(k)] = math.degrees(median)
            else:
                out.body_length[int(k)] = median
    return out


def kinematic_scales(
    sessions: Sequence[VideoSession], default_px_per_cm: float | None
) -> tuple[str, list[float]]:
    """The unit every session can be put in (cm, body lengths, px), and each session's pixels
    per that unit; ``default_px_per_cm`` is the experiment's scale."""
    cm = [s.px_per_cm or default_px_per_cm for s in sessions]
    if all(cm):
        return "cm", [float(c) for c in cm if c]
    from model.body import body_scale

    areas = [float((s.quality or {}).get("body_area_px2") or 0.0) for s in sessions]
    if all(a > 0 for a in areas):
        return "body lengths", [body_scale(a) for a in areas]
    return "px", [1.0] * len(sessions)


def motion_scalars(features: Features, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` frames of speed, angular velocity and body length; NaN for a scalar the
    session lacks and on frames without the mouse (tracking fills those, so they would count
    as standing still)."""
    quality = np.asarray(features.quality)[:n]
    names = list(features.quality_names)
    lost = quality == names.index("no_mouse") if "no_mouse" in names else np.zeros(n, bool)
    out = {}
    for name in ("speed", "angular_velocity", "body_length"):
        value = features.scalars.get(name)
        v = np.full(n, np.nan) if value is None else np.array(value[:n], dtype=np.float64)
        v[: len(lost)][lost] = np.nan
        out[name] = v
    return out


def model_kinematics(db: Session, storage: Storage, model: SyllableModel) -> SyllableKinematics:
    """Kinematics per syllable over every session the model segmented."""
    from model.features import load

    rows = db.execute(
        select(Segmentation, VideoSession)
        .join(VideoSession, VideoSession.id == Segmentation.session_id)
        .where(Segmentation.model_id == model.id, VideoSession.features_path.is_not(None))
        .order_by(VideoSession.id)
    ).all()
    sessions = [session for _seg, session in rows]
    experiment = db.get(Experiment, model.experiment_id)
    unit, scales = kinematic_scales(sessions, experiment.px_per_cm if experiment else None)
    motions = []
    for (segmentation, session), scale in zip(rows, scales, strict=True):
        try:
            features = load(storage.local(str(session.features_path)))
        except (OSError, ValueError, KeyError):
            continue  # a session whose results are missing still lets the others count
        bouts = syllables.session_bouts(db, segmentation.id)
        labels = syllables.labels_from_bouts(bouts, segmentation.frame_count)
        n = min(len(labels), features.n_frames)
        scalar = motion_scalars(features, n)
        motions.append(
            SessionMotion(
                syllable=labels[:n],
                speed=scalar["speed"] / scale,
                turning=scalar["angular_velocity"],
                body_length=scalar["body_length"] / scale,
            )
        )
    out = summarise(motions, unit)
    if unit == "body lengths":
        out.note = "Give the sessions' scale (pixels per cm) to see them in cm."
    elif unit == "px":
        out.note = "In video pixels: some sessions have neither a scale nor a body size."
    return out
