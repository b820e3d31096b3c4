"""The design of a cohort comparison, gathered from the database: the animals (subjects) of
each cohort, each with its sessions pooled, and what the design can and cannot support.

The animal is the unit of analysis: all sessions of one subject segmented by the experiment's
newest ready model are pooled (frames, bouts and transitions summed) into one summary, so an
animal recorded three times is never counted as three animals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.comparison import stats
from app.core.errors import BadInput, Conflict
from app.core.storage import Storage
from app.experiments import service as experiments
from app.experiments.models import Cohort, Experiment, Subject, VideoSession
from app.syllables import groupings
from app.syllables import service as syllables
from app.syllables.groupings import Grouping
from app.syllables.kinematics import kinematic_scales, motion_scalars
from app.syllables.models import Bout, Segmentation, SyllableModel

ALPHA = 0.05
# Syllables below this share of all frames (pooled over the animals compared) are shown but
# not tested: they carry little behaviour and only cost power under the FDR correction.
MIN_USAGE = 0.005
# Transitions are tested when the source syllable left in every animal and the transition was
# seen at least this many times per animal on average.
MIN_TRANSITIONS_PER_ANIMAL = 1.0
MAX_MATRIX_SYLLABLES = 20
DURATION_SAMPLE = 300
MIN_ANIMALS = 3
SEED = 0


@dataclass
class Animal:
    """One subject's pooled data (K syllables). ``transitions`` (K, K) counts bout-to-bout
    changes (consecutive bouts of one session); ``self_steps`` (K,) frame-to-frame steps that
    stay in the syllable; ``durations`` per syllable, seconds of every bout."""

    subject: Subject
    cohort: str
    session_ids: list[int]
    frames: int
    seconds: float
    frames_in: np.ndarray
    bouts: np.ndarray
    transitions: np.ndarray
    self_steps: np.ndarray
    durations: list[list[float]]
    distance_px: float | None = None
    speed_sum: float = 0.0
    speed_frames: int = 0
    sessions: list[VideoSession] = field(default_factory=list)
    # Per syllable: sums and frame counts of speed, |turning| and body length (in the design's
    # kinematics unit), for the animal's means within each syllable.
    motion_sums: np.ndarray | None = None  # (3, K)
    motion_frames: np.ndarray | None = None  # (3, K)

    def motion_means(self) -> np.ndarray | None:
        """(3, K) mean speed (unit/s), |turning rate| (deg/s), body length (unit) per syllable;
        NaN where the animal has no tracked frame of the syllable."""
        if self.motion_sums is None or self.motion_frames is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.motion_frames > 0, self.motion_sums / self.motion_frames, np.nan)

    @property
    def usage(self) -> np.ndarray:
        return self.frames_in / max(self.frames, 1)

    @property
    def bouts_per_min(self) -> np.ndarray:
        return self.bouts / (self.seconds / 60) if self.seconds > 0 else np.zeros_like(self.usage)

    @property
    def mean_speed(self) -> float | None:
        return self.speed_sum / self.speed_frames if self.speed_frames else None

    def transition_probabilities(self, *, with_self: bool) -> np.ndarray:
        """(K, K) bigram probabilities, rows: from; NaN rows for syllables never left."""
        counts = self.transitions.astype(np.float64).copy()
        if with_self:
            counts[np.diag_indices_from(counts)] += self.self_steps
        else:
            np.fill_diagonal(counts, 0.0)
        rows = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, counts / rows, np.nan)


@dataclass
class Design:
    """What is being compared: the model, the cohorts in order, their animals, and the
    sessions that were left out (with why)."""

    experiment: Experiment
    model: SyllableModel
    cohorts: list[str]
    animals: list[Animal]
    sessions_per_cohort: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    grouping: Grouping | None = None  # the lab's grouping of syllables in force
    kinematics_unit: str = "px"  # of the animals' motion per syllable: cm, body lengths or px

    @property
    def groups(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.cohorts)}
        return np.array([index[a.cohort] for a in self.animals], dtype=np.int64)


def parse_cohorts(value: str | None) -> list[str] | None:
    """``"saline,drug"`` → ``["saline", "drug"]``; empty → ``None`` (every cohort)."""
    if value is None or not value.strip():
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    return list(dict.fromkeys(names)) or None


def load_design(
    db: Session, storage: Storage | None, *, experiment_id: int, cohorts: Sequence[str] | None
) -> Design:
    """Gather per-animal summaries of the chosen cohorts (all cohorts when ``None``) from the
    newest ready model's segmentations. Raises ``Conflict`` when no model is ready and
    ``BadInput`` for unknown cohort names."""
    experiment = experiments.get_experiment_or_raise(db, experiment_id)
    model = syllables.latest_ready_model(db, experiment_id)
    if model is None:
        raise Conflict(
            "This experiment has no fitted model yet: fit one (and let it segment the "
            "sessions) before comparing cohorts."
        )
    known = {c.name: c for c in experiments.list_cohorts(db, experiment_id)}
    if cohorts is None:
        chosen = sorted(known)
    else:
        unknown = [c for c in cohorts if c not in known]
        if unknown:
            raise BadInput(
                f"Unknown cohort(s) {', '.join(map(repr, unknown))}; this experiment has "
                f"{', '.join(map(repr, sorted(known))) or 'no cohorts'}."
            )
        chosen = list(cohorts)
    warnings: list[str] = []
    k = model.states
    cohort_ids = {known[c].id: c for c in chosen}
    rows = db.execute(
        select(VideoSession, Subject)
        .join(Subject, Subject.id == VideoSession.subject_id)
        .where(
            VideoSession.experiment_id == experiment_id,
            Subject.cohort_id.in_(list(cohort_ids) or [-1]),
        )
        .order_by(Subject.name, VideoSession.id)
    ).all()
    segmentations = {
        s.session_id: s
        for s in db.scalars(
            select(Segmentation).where(
                Segmentation.model_id == model.id,
                Segmentation.session_id.in_([v.id for v, _ in rows] or [-1]),
            )
        )
    }
    # Syllables the lab grouped are counted as one (bouts of one group joined).
    grouping = groupings.current(db, model.id)
    by_segmentation = {
        seg_id: groupings.group_bouts(bouts, grouping, k)
        for seg_id, bouts in _bouts_by_segmentation(
            db, [s.id for s in segmentations.values()]
        ).items()
    }
    unit, scales = kinematic_scales(
        [v for v, _ in rows if v.id in segmentations], experiment.px_per_cm
    )
    scale_of = dict(zip([v.id for v, _ in rows if v.id in segmentations], scales, strict=True))
    animals: dict[int, Animal] = {}
    missing: list[int] = []
    sessions_per_cohort: dict[str, int] = defaultdict(int)
    no_features = 0
    for session, subject in rows:
        seg = segmentations.get(session.id)
        if seg is None:
            missing.append(session.id)
            continue
        cohort = cohort_ids[subject.cohort_id] if subject.cohort_id is not None else ""
        animal = animals.get(subject.id)
        if animal is None:
            animal = Animal(
                subject=subject,
                cohort=cohort,
                session_ids=[],
                frames=0,
                seconds=0.0,
                frames_in=np.zeros(k),
                bouts=np.zeros(k),
                transitions=np.zeros((k, k)),
                self_steps=np.zeros(k),
                durations=[[] for _ in range(k)],
            )
            animals[subject.id] = animal
        sessions_per_cohort[cohort] += 1
        animal.sessions.append(session)
        fps = session.fps or 30.0
        bouts = by_segmentation.get(seg.id, np.zeros((0, 5)))
        _add_session(animal, seg, bouts, fps)
        if not _add_locomotion(animal, session, storage, bouts, scale_of[session.id]):
            no_features += 1
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
        warnings.append(
            f"{len(missing)} session(s) of these cohorts are not segmented by model "
            f"v{model.version} yet (ids {shown}); they are left out. Wait for their "
            "segmentation jobs, or fit again if they came later."
        )
    unassigned = int(
        db.scalar(
            select(func.count())
            .select_from(VideoSession)
            .outerjoin(Subject, Subject.id == VideoSession.subject_id)
            .where(VideoSession.experiment_id == experiment_id, Subject.cohort_id.is_(None))
        )
        or 0
    )
    if unassigned:
        warnings.append(
            f"{unassigned} session(s) have no animal or no cohort and are left out; give them "
            "one on the experiment page to include them."
        )
    if no_features:
        warnings.append(
            f"{no_features} session(s) have no tracking data; distance and speed leave them out."
        )
    ordered = sorted(animals.values(), key=lambda a: (chosen.index(a.cohort), a.subject.name))
    design = Design(
        experiment, model, chosen, ordered, dict(sessions_per_cohort), warnings, grouping, unit
    )
    _design_warnings(design)
    return design


def _bouts_by_segmentation(db: Session, ids: list[int]) -> dict[int, np.ndarray]:
    """segmentation id → (n, 5) float array (start_frame, end_frame, syllable, start_s, end_s)."""
    if not ids:
        return {}
    rows = db.execute(
        select(
            Bout.segmentation_id,
            Bout.start_frame,
            Bout.end_frame,
            Bout.syllable,
            Bout.start_s,
            Bout.end_s,
        )
        .where(Bout.segmentation_id.in_(ids))
        .order_by(Bout.segmentation_id, Bout.start_frame)
    ).all()
    if not rows:
        return {}
    arr = np.asarray(rows, dtype=np.float64)
    out: dict[int, np.ndarray] = {}
    seg_ids = arr[:, 0].astype(np.int64)
    for sid in np.unique(seg_ids):
        out[int(sid)] = arr[seg_ids == sid, 1:]
    return out


def _add_session(animal: Animal, seg: Segmentation, bouts: np.ndarray, fps: float) -> None:
    k = len(animal.frames_in)
    animal.session_ids.append(seg.session_id)
    animal.frames += int(seg.frame_count)
    animal.seconds += seg.frame_count / fps
    if len(bouts) == 0:
        return
    labels = bouts[:, 2].astype(np.int64)
    ok = (labels >= 0) & (labels < k)
    lengths = bouts[:, 1] - bouts[:, 0]
    np.add.at(animal.frames_in, labels[ok], lengths[ok])
    np.add.at(animal.bouts, labels[ok], 1)
    np.add.at(animal.self_steps, labels[ok], np.maximum(lengths[ok] - 1, 0))
    src, dst = labels[:-1], labels[1:]
    pair = (src >= 0) & (src < k) & (dst >= 0) & (dst < k)
    np.add.at(animal.transitions, (src[pair], dst[pair]), 1)
    seconds = bouts[:, 4] - bouts[:, 3]
    for label, d in zip(labels[ok], seconds[ok], strict=True):
        animal.durations[label].append(float(d))


def _add_locomotion(
    animal: Animal, session: VideoSession, storage: Storage | None, bouts: np.ndarray, scale: float
) -> bool:
    """Distance (px, path length of the body centre) and speed (px/s) from the session's
    tracking, and its motion within each syllable (``scale`` px per kinematics unit); False
    when it has no tracking."""
    if storage is None or not session.features_path:
        return False
    from model.features import load

    try:
        features = load(storage.local(session.features_path))
    except (OSError, ValueError, KeyError):
        return False
    x = np.asarray(features.scalars.get("x", []), dtype=np.float64)
    y = np.asarray(features.scalars.get("y", []), dtype=np.float64)
    speed = np.asarray(features.scalars.get("speed", []), dtype=np.float64)
    if len(x) > 1:
        steps = np.hypot(np.diff(x), np.diff(y))
        animal.distance_px = (animal.distance_px or 0.0) + float(np.nansum(steps))
    finite = np.isfinite(speed)
    animal.speed_sum += float(speed[finite].sum())
    animal.speed_frames += int(finite.sum())
    k = len(animal.frames_in)
    if animal.motion_sums is None or animal.motion_frames is None:
        animal.motion_sums, animal.motion_frames = np.zeros((3, k)), np.zeros((3, k))
    n = len(speed)
    labels = syllables.labels_from_bouts(bouts[:, :3].astype(np.int64), n)
    motion = motion_scalars(features, n)
    values = (
        motion["speed"] / scale,
        np.degrees(np.abs(motion["angular_velocity"])),
        motion["body_length"] / scale,
    )
    for row, v in enumerate(values):
        ok = np.isfinite(v) & (labels >= 0) & (labels < k)
        np.add.at(animal.motion_sums[row], labels[ok], v[ok])
        np.add.at(animal.motion_frames[row], labels[ok], 1)
    return True


def _design_warnings(design: Design) -> None:
    counts = {c: sum(a.cohort == c for a in design.animals) for c in design.cohorts}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        design.warnings.append(
            f"Cohort(s) {', '.join(map(repr, empty))} have no segmented animal and are left out."
        )
        design.cohorts = [c for c in design.cohorts if counts[c] > 0]
    if len(design.cohorts) < 2:
        design.warnings.append(
            "Only one cohort has segmented animals: there is nothing to compare it with. "
            "Pick two or more cohorts (e.g. ?cohorts=saline,drug)."
        )
        return
    few = [f"{c!r} ({counts[c]})" for c in design.cohorts if counts[c] < MIN_ANIMALS]
    if few:
        design.warnings.append(
            f"Fewer than {MIN_ANIMALS} animals in {', '.join(few)}: a group this small cannot "
            "support a claim about the cohort; treat any difference as anecdotal and record "
            "more animals."
        )
    sizes = [counts[c] for c in design.cohorts]
    floor = smallest_p_value(sizes)
    if floor > ALPHA:
        design.warnings.append(
            f"With {' + '.join(map(str, sizes))} animals the smallest p-value any test can give "
            f"is {floor:.3g}, above α = {ALPHA}: no difference can be declared significant."
        )
    for c in design.cohorts:
        sessions = design.sessions_per_cohort.get(c, 0)
        if sessions > counts[c]:
            design.warnings.append(
                f"Cohort {c!r}: {sessions} sessions from {counts[c]} animals; sessions of one "
                "animal are pooled, so the animal (not the session) is the unit of analysis."
            )
    seconds = [a.seconds for a in design.animals]
    if seconds and min(seconds) > 0 and max(seconds) / min(seconds) > 1.5:
        design.warnings.append(
            f"Recording time per animal ranges from {min(seconds) / 60:.1f} to "
            f"{max(seconds) / 60:.1f} min; usage is a fraction of time, but rare syllables are "
            "measured less precisely in the short recordings."
        )


def smallest_p_value(sizes: Sequence[int]) -> float:
    """The smallest p-value the group test can give for these group sizes (perfect
    separation); 0 when the asymptotic test would be used."""
    if len(sizes) < 2 or min(sizes) == 0:
        return 1.0
    if not stats.use_permutation(sizes):
        return 0.0
    values = np.concatenate([np.full(n, float(i)) for i, n in enumerate(sizes)])
    groups = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    return stats.group_test(values, groups).p_value


def cohort_names(db: Session, experiment_id: int) -> list[Cohort]:
    """The experiment's cohorts (for the page's picker)."""
    return experiments.list_cohorts(db, experiment_id)
