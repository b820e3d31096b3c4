"""Cohort comparison over a segmented experiment: plain functions over a database session.

The animal (subject) is the unit of analysis: all sessions of one subject segmented by the
experiment's newest ready model are pooled (frames, bouts and transitions summed) into one
summary, so an animal recorded three times is never counted as three animals. Statistics come
from :mod:`app.comparison.stats`; this module gathers the data, decides what can be tested,
writes the warnings and the methods paragraph, and renders the CSV exports.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.comparison import nuisance, stats
from app.comparison.schemas import (
    AnimalSummary,
    CohortSummary,
    CohortTransitions,
    ComparisonPublic,
    DurationSample,
    FingerprintPrediction,
    FingerprintResult,
    LocomotionResult,
    PairwiseResult,
    SyllableResult,
    TransitionResult,
    TransitionsSummary,
)
from app.core.errors import BadInput, Conflict
from app.core.storage import Storage
from app.experiments import service as experiments
from app.experiments.models import Cohort, Experiment, Subject, VideoSession
from app.syllables import service as syllables
from app.syllables.models import Bout, Segmentation, Syllable, SyllableModel

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
    by_segmentation = _bouts_by_segmentation(db, [s.id for s in segmentations.values()])
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
        _add_session(animal, seg, by_segmentation.get(seg.id, np.zeros((0, 5))), fps)
        if not _add_locomotion(animal, session, storage):
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
    design = Design(experiment, model, chosen, ordered, dict(sessions_per_cohort), warnings)
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


def _add_locomotion(animal: Animal, session: VideoSession, storage: Storage | None) -> bool:
    """Distance (px, path length of the body centre) and speed (px/s) from the session's
    tracking; False when it has none."""
    if storage is None or not session.features_path:
        return False
    from model.features import load

    try:
        features = load(storage.abspath(session.features_path))
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


# ---------------------------------------------------------------------------------------------
# The comparison


def compare(
    db: Session,
    storage: Storage | None,
    *,
    experiment_id: int,
    cohorts: Sequence[str] | None = None,
    alpha: float = ALPHA,
) -> ComparisonPublic:
    """Everything the comparison page shows: per-animal summaries, per-syllable tests with
    FDR, the fingerprint classifier, transition differences, locomotion, warnings, methods."""
    return run(db, storage, experiment_id=experiment_id, cohorts=cohorts, alpha=alpha)[1]


def run(
    db: Session,
    storage: Storage | None,
    *,
    experiment_id: int,
    cohorts: Sequence[str] | None = None,
    alpha: float = ALPHA,
) -> tuple[Design, ComparisonPublic]:
    """The design (per-animal data) and the comparison; the CSV exports need both."""
    if not 0 < alpha < 1:
        raise BadInput(f"alpha must be between 0 and 1, not {alpha}.")
    design = load_design(db, storage, experiment_id=experiment_id, cohorts=cohorts)
    return design, compare_design(db, design, alpha=alpha)


def compare_design(db: Session, design: Design, *, alpha: float = ALPHA) -> ComparisonPublic:
    model = design.model
    k = model.states
    syllable_rows = {
        s.index: s for s in db.scalars(select(Syllable).where(Syllable.model_id == model.id))
    }
    labels = [syllable_rows[i].label if i in syllable_rows else f"syllable {i}" for i in range(k)]
    colors = [syllable_rows[i].color if i in syllable_rows else "#888888" for i in range(k)]
    animals = design.animals
    cohorts = design.cohorts
    comparable = len(cohorts) >= 2
    groups = design.groups if animals else np.zeros(0, dtype=np.int64)
    usage = np.array([a.usage for a in animals]).reshape(len(animals), k)
    pooled_frames = np.sum([a.frames_in for a in animals], axis=0) if animals else np.zeros(k)
    pooled_usage = pooled_frames / max(pooled_frames.sum(), 1)
    tested = [i for i in range(k) if pooled_usage[i] >= MIN_USAGE] if comparable else []

    results = _syllable_results(design, usage, groups, tested, labels, colors, syllable_rows)
    q = stats.benjamini_hochberg(
        [r.p_value if r.tested and r.p_value is not None else np.nan for r in results]
    )
    for r, qv in zip(results, q, strict=True):
        if r.tested:
            r.q_value = float(qv)
            r.significant = bool(qv <= alpha)
    # Bout durations: per-animal medians (animals without a bout of the syllable left out),
    # tested where every cohort keeps at least two animals; a separate BH family.
    duration_q = stats.benjamini_hochberg(
        [np.nan if r.duration_p_value is None else r.duration_p_value for r in results]
    )
    for r, qv in zip(results, duration_q, strict=True):
        if r.duration_p_value is not None:
            r.duration_q_value = float(qv)
            r.duration_significant = bool(qv <= alpha)
    results.sort(key=lambda r: (not r.tested, -abs(r.effect_size or 0.0), r.index))

    fingerprint = _fingerprint(design, usage[:, tested] if tested else usage, groups)
    transitions = _transitions(design, tested, labels, alpha)
    locomotion = _locomotion(design, groups)
    durations = _duration_samples(design, pooled_usage)
    out = ComparisonPublic(
        experiment_id=design.experiment.id,
        model_id=model.id,
        model_version=model.version,
        cohorts=[
            CohortSummary(
                name=c,
                animals=sum(a.cohort == c for a in animals),
                sessions=sum(len(a.session_ids) for a in animals if a.cohort == c),
            )
            for c in cohorts
        ],
        alpha=alpha,
        syllable_labels=labels,
        syllable_colors=colors,
        animals=[_animal_public(a) for a in animals],
        syllables=results,
        fingerprint=fingerprint,
        transitions=transitions,
        locomotion=locomotion,
        durations=durations,
        warnings=list(design.warnings),
        methods="",
    )
    if comparable:
        by_cohort = {c: [a.sessions for a in animals if a.cohort == c] for c in cohorts}
        out.nuisances = nuisance.check_conditions(cohorts, by_cohort)
        out.warnings.extend(nuisance.guard(out))
    out.methods = methods_text(design, out)
    return out


def _animal_public(a: Animal) -> AnimalSummary:
    def maybe(values: list[float], fn: Any) -> float | None:
        return round(float(fn(values)), 4) if values else None

    return AnimalSummary(
        subject_id=a.subject.id,
        subject=a.subject.name,
        cohort=a.cohort,
        session_ids=a.session_ids,
        frames=a.frames,
        duration_s=round(a.seconds, 3),
        usage=[round(float(u), 8) for u in a.usage],
        bouts=[int(b) for b in a.bouts],
        bouts_per_min=[round(float(b), 4) for b in a.bouts_per_min],
        median_duration_s=[maybe(d, np.median) for d in a.durations],
        mean_duration_s=[maybe(d, np.mean) for d in a.durations],
        distance_px=None if a.distance_px is None else round(a.distance_px, 2),
        mean_speed_px_s=None if a.mean_speed is None else round(a.mean_speed, 3),
    )


def _syllable_results(
    design: Design,
    usage: np.ndarray,
    groups: np.ndarray,
    tested: list[int],
    labels: list[str],
    colors: list[str],
    syllable_rows: dict[int, Syllable],
) -> list[SyllableResult]:
    cohorts = design.cohorts
    rng = np.random.default_rng(SEED)
    model_id = design.model.id
    out: list[SyllableResult] = []
    for i in range(design.model.states):
        used = usage[:, i] if len(usage) else np.zeros(0)
        if i not in tested and not used.any():
            continue
        row = syllable_rows.get(i)
        per_animal = np.array(
            [np.median(a.durations[i]) if a.durations[i] else np.nan for a in design.animals]
        )
        medians: dict[str, float | None] = {}
        for g, c in enumerate(cohorts):
            mine = per_animal[(groups == g) & ~np.isnan(per_animal)]
            medians[c] = round(float(np.median(mine)), 4) if len(mine) else None
        result = SyllableResult(
            index=i,
            label=labels[i],
            color=colors[i],
            gallery_url=f"/models/{model_id}/syllables#syllable-{i}",
            syllable_id=row.id if row else None,
            clip_urls=[
                f"/api/syllables/{row.id}/clips/{j}.mp4" for j in range(len(row.clips or []))
            ][:3]
            if row
            else [],
            tested=i in tested,
            mean_usage={
                c: round(float(used[groups == g].mean()), 6) if np.any(groups == g) else 0.0
                for g, c in enumerate(cohorts)
            },
            median_duration_s=medians,
        )
        has = ~np.isnan(per_animal)
        if i in tested and all(np.sum(has & (groups == g)) >= 2 for g in range(len(cohorts))):
            durations = stats.group_test(per_animal[has], groups[has])
            result.duration_p_value = durations.p_value
        if i in tested:
            test = stats.group_test(used, groups)
            result.test = test.test
            result.statistic = round(test.statistic, 6)
            result.p_value = test.p_value
            result.p_method = test.method
            result.pairwise = _pairwise(used, groups, cohorts, rng)
            if len(cohorts) == 2:
                result.effect_size = result.pairwise[0].cliffs_delta
            else:
                result.effect_size = max((p.cliffs_delta for p in result.pairwise), key=abs)
            last = result.pairwise[len(cohorts) - 2] if result.pairwise else None
            if last is not None and last.a == cohorts[0]:
                result.direction = "up" if last.mean_difference > 0 else "down"
        out.append(result)
    return out


def _pairwise(
    values: np.ndarray, groups: np.ndarray, cohorts: list[str], rng: np.random.Generator
) -> list[PairwiseResult]:
    dunn = {(d.a, d.b): d for d in stats.dunn(values, groups)} if len(cohorts) > 2 else {}
    out = []
    for a in range(len(cohorts)):
        for b in range(a + 1, len(cohorts)):
            x, y = values[groups == a], values[groups == b]
            diff = stats.mean_difference_ci(x, y, rng=rng)
            d = dunn.get((a, b))
            out.append(
                PairwiseResult(
                    a=cohorts[a],
                    b=cohorts[b],
                    cliffs_delta=round(stats.cliffs_delta(x, y), 6),
                    mean_difference=diff.difference,
                    ci_low=diff.ci_low,
                    ci_high=diff.ci_high,
                    dunn_z=None if d is None else d.z,
                    dunn_p=None if d is None else d.p_value,
                    dunn_p_adjusted=None if d is None else d.p_adjusted,
                )
            )
    return out


def _fingerprint(design: Design, features: np.ndarray, groups: np.ndarray) -> FingerprintResult:
    method = (
        "leave-one-animal-out nearest-centroid classifier on the square root of syllable usage "
        "(Hellinger distance); permutation p-value over relabellings of the animals"
    )
    cohorts = design.cohorts
    sizes = [int(np.sum(groups == g)) for g in range(len(cohorts))]
    if len(cohorts) < 2:
        return FingerprintResult(method=method, ran=False, reason="needs two or more cohorts")
    if min(sizes) < 2:
        return FingerprintResult(
            method=method, ran=False, reason="needs at least 2 animals in every cohort"
        )
    fp = stats.fingerprint(np.sqrt(features), groups, rng=np.random.default_rng(SEED))
    return FingerprintResult(
        method=method,
        ran=True,
        accuracy=fp.accuracy,
        chance=fp.chance,
        null_mean=fp.null_mean,
        p_value=fp.p_value,
        n_permutations=fp.n_permutations,
        exact=fp.exact,
        predictions=[
            FingerprintPrediction(subject=a.subject.name, cohort=a.cohort, predicted=cohorts[p])
            for a, p in zip(design.animals, fp.predicted, strict=True)
        ],
    )


def _matrix(values: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else round(float(v), 5) for v in row] for row in values]


def _transitions(
    design: Design, tested: list[int], labels: list[str], alpha: float
) -> TransitionsSummary:
    animals = design.animals
    cohorts = design.cohorts
    groups = design.groups if animals else np.zeros(0, dtype=np.int64)
    pooled = np.sum([a.frames_in for a in animals], axis=0) if animals else np.zeros(0)
    shown = (
        [int(i) for i in np.argsort(-pooled, kind="stable") if pooled[i] > 0][:MAX_MATRIX_SYLLABLES]
        if animals
        else []
    )
    shown.sort()
    without = np.array([a.transition_probabilities(with_self=False) for a in animals])
    with_self = np.array([a.transition_probabilities(with_self=True) for a in animals])
    per_cohort = []
    for g, c in enumerate(cohorts):
        mine = groups == g
        with np.errstate(invalid="ignore"), _quiet():
            m0 = np.nanmean(without[mine], axis=0) if mine.any() else np.full((0, 0), np.nan)
            m1 = np.nanmean(with_self[mine], axis=0) if mine.any() else np.full((0, 0), np.nan)
        sub = np.ix_(shown, shown)
        per_cohort.append(
            CohortTransitions(
                cohort=c,
                without_self=_matrix(m0[sub]) if len(shown) else [],
                with_self=_matrix(m1[sub]) if len(shown) else [],
            )
        )
    results: list[TransitionResult] = []
    if len(cohorts) >= 2 and animals:
        counts = np.array([a.transitions for a in animals])
        candidates = []
        for i in tested:
            if np.isnan(without[:, i, 0]).any():
                continue  # some animal never left syllable i: its row is undefined
            for j in tested:
                if i != j and counts[:, i, j].sum() >= MIN_TRANSITIONS_PER_ANIMAL * len(animals):
                    candidates.append((i, j))
        raw = []
        for i, j in candidates:
            values = without[:, i, j]
            test = stats.group_test(values, groups)
            means = {c: float(values[groups == g].mean()) for g, c in enumerate(cohorts)}
            raw.append((i, j, test, means))
        q = stats.benjamini_hochberg([t.p_value for _, _, t, _ in raw])
        for (i, j, test, means), qv in zip(raw, q, strict=True):
            results.append(
                TransitionResult(
                    source=i,
                    target=j,
                    source_label=labels[i],
                    target_label=labels[j],
                    mean_probability={c: round(v, 5) for c, v in means.items()},
                    difference=round(means[cohorts[-1]] - means[cohorts[0]], 5),
                    test=test.test,
                    statistic=round(test.statistic, 6),
                    p_value=test.p_value,
                    p_method=test.method,
                    q_value=float(qv),
                    significant=bool(qv <= alpha),
                )
            )
        results.sort(key=lambda r: (r.q_value, -abs(r.difference)))
    return TransitionsSummary(
        syllables=shown,
        labels=[labels[i] for i in shown],
        cohorts=per_cohort,
        tested=len(results),
        results=results,
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy's "mean of empty slice" warnings (NaN is the intended answer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def _locomotion(design: Design, groups: np.ndarray) -> list[LocomotionResult]:
    animals = design.animals
    cohorts = design.cohorts
    measures: list[tuple[str, str, list[float | None]]] = [
        (
            "distance travelled per minute",
            "px/min",
            [
                None if a.distance_px is None or a.seconds <= 0 else a.distance_px / a.seconds * 60
                for a in animals
            ],
        ),
        ("mean speed", "px/s", [a.mean_speed for a in animals]),
    ]
    out = []
    for name, unit, values in measures:
        ok = np.array([v is not None for v in values], dtype=bool)
        arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        means = {
            c: (float(arr[ok & (groups == g)].mean()) if np.any(ok & (groups == g)) else None)
            for g, c in enumerate(cohorts)
        }
        result = LocomotionResult(measure=name, unit=unit, means=means)
        present = [g for g in range(len(cohorts)) if np.sum(ok & (groups == g)) >= 1]
        if len(cohorts) >= 2 and len(present) == len(cohorts):
            test = stats.group_test(arr[ok], groups[ok])
            result.test, result.p_value, result.p_method = test.test, test.p_value, test.method
            if len(cohorts) == 2:
                result.cliffs_delta = stats.cliffs_delta(
                    arr[ok & (groups == 0)], arr[ok & (groups == 1)]
                )
        out.append(result)
    return out


def _duration_samples(design: Design, pooled_usage: np.ndarray) -> list[DurationSample]:
    out = []
    order = [int(i) for i in np.argsort(-pooled_usage, kind="stable") if pooled_usage[i] > 0]
    for i in order[:MAX_MATRIX_SYLLABLES]:
        for c in design.cohorts:
            pooled = [d for a in design.animals if a.cohort == c for d in a.durations[i]]
            if not pooled:
                continue
            step = max(1, math.ceil(len(pooled) / DURATION_SAMPLE))
            out.append(
                DurationSample(index=i, cohort=c, durations_s=[round(d, 4) for d in pooled[::step]])
            )
    return out


# ---------------------------------------------------------------------------------------------
# Methods paragraph


def _p_method_phrase(methods: set[str]) -> str:
    if not methods:
        return ""
    parts = sorted(methods)
    return "; ".join(parts)


def methods_text(design: Design, result: ComparisonPublic) -> str:
    """A methods paragraph written from what was run: tests, corrections, numbers of animals
    and sessions per cohort, the model version."""
    model = design.model
    cohorts = result.cohorts
    sizes = ", ".join(
        f"{c.name}: {c.animals} animal{'s' if c.animals != 1 else ''} "
        f"({c.sessions} session{'s' if c.sessions != 1 else ''})"
        for c in cohorts
    )
    used = model.states_used if model.states_used is not None else model.states
    text = [
        f"Behaviour was segmented into syllables with model version {model.version} of "
        f'experiment "{design.experiment.name}" (a structured variational autoencoder with '
        f"{model.states} discrete states, {used} in use). "
        f"The animal was the unit of analysis: all sessions of an animal were pooled before any "
        f"statistic was computed ({sizes})."
    ]
    tested = [s for s in result.syllables if s.tested]
    if len(cohorts) < 2:
        text.append("No statistical test was run: fewer than two cohorts had segmented animals.")
        return " ".join(text)
    two = len(cohorts) == 2
    p_methods = {s.p_method for s in tested if s.p_method}
    test_name = "two-sided Mann–Whitney U tests" if two else "Kruskal–Wallis tests"
    n_sig = sum(s.significant for s in tested)
    text.append(
        f"Syllable usage (fraction of frames) was compared between cohorts for the "
        f"{len(tested)} syllables with at least {MIN_USAGE:.1%} of all frames, with {test_name} "
        f"(mid-ranks for ties; p-values: {_p_method_phrase(p_methods) or 'none'}; permutation "
        "p-values count assignments at least as extreme as the observed one). "
        f"P-values were corrected across syllables with the Benjamini–Hochberg procedure "
        f"(false discovery rate {result.alpha:g}); {n_sig} of {len(tested)} syllables differed."
    )
    if not two:
        text.append(
            "Pairs of cohorts were compared with Dunn's post-hoc test (tie-corrected), "
            "Holm-adjusted over pairs within each syllable."
        )
    n_dur = sum(s.duration_p_value is not None for s in tested)
    if n_dur:
        text.append(
            f"Bout durations (each animal's median per syllable) were compared with the same "
            f"tests for {n_dur} syllables, with a separate Benjamini–Hochberg correction; "
            f"{sum(s.duration_significant for s in tested)} differed."
        )
    text.append(
        "Effect sizes are Cliff's delta and the difference in mean usage with a 95% percentile "
        "bootstrap confidence interval (4,000 resamples of animals within each cohort)."
    )
    tr = result.transitions
    if tr.tested:
        n_tr = sum(r.significant for r in tr.results)
        text.append(
            f"Bout-to-bout transition probabilities (self-transitions excluded) were computed "
            f"per animal and compared for {tr.tested} transitions seen on average at least "
            f"once per animal, with the same tests and a separate Benjamini–Hochberg correction; "
            f"{n_tr} differed."
        )
    fp = result.fingerprint
    if fp.ran and fp.accuracy is not None:
        how = (
            f"all {fp.n_permutations} relabellings"
            if fp.exact
            else f"{fp.n_permutations} random relabellings"
        )
        text.append(
            f"To test the behaviour as a whole, a {fp.method.split(';')[0]} predicted each "
            f"animal's cohort with accuracy {fp.accuracy:.0%} (largest cohort {fp.chance:.0%}; "
            f"permutation p = {fp.p_value:.3g} over {how})."
        )
    loco = [r for r in result.locomotion if r.p_value is not None]
    if loco:
        text.append(
            "Locomotion (distance travelled per minute and mean speed of the body centre, in "
            "pixels) was compared with the same test, uncorrected: "
            + "; ".join(f"{r.measure} p = {r.p_value:.3g}" for r in loco)
            + "."
        )
    conditions = nuisance.methods_sentence(result)
    if conditions:
        text.append(conditions)
    text.append(f"Analysis by Syllabary (random seed {SEED}).")
    return " ".join(text)


# ---------------------------------------------------------------------------------------------
# CSV exports


def _csv(rows: Iterator[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


USAGE_COLUMNS = [
    "subject_id", "subject", "cohort", "sex", "age", "genotype", "sessions", "session_ids",
    "frames", "duration_s", "model_version", "syllable", "syllable_name", "usage_fraction",
    "bouts", "bouts_per_min", "median_duration_s", "mean_duration_s", "distance_px",
    "mean_speed_px_s",
]  # fmt: skip


def usage_csv(design: Design, result: ComparisonPublic) -> str:
    """Tidy per-animal table: one row per animal × syllable, with subject and cohort."""
    subjects = {a.subject.id: a.subject for a in design.animals}

    def rows() -> Iterator[list[Any]]:
        yield USAGE_COLUMNS
        for a in result.animals:
            s = subjects[a.subject_id]
            for i, label in enumerate(result.syllable_labels):
                if a.frames == 0:
                    continue
                yield [
                    a.subject_id, a.subject, a.cohort, s.sex, s.age, s.genotype,
                    len(a.session_ids), ";".join(map(str, a.session_ids)), a.frames,
                    a.duration_s, result.model_version, i, label, a.usage[i], a.bouts[i],
                    a.bouts_per_min[i], a.median_duration_s[i], a.mean_duration_s[i],
                    a.distance_px, a.mean_speed_px_s,
                ]  # fmt: skip

    return _csv(rows())


def statistics_csv(result: ComparisonPublic) -> str:
    """One row per syllable (and pair of cohorts): test, p, q, effect sizes, means."""
    cohorts = [c.name for c in result.cohorts]

    def rows() -> Iterator[list[Any]]:
        yield [
            "syllable", "syllable_name", "tested", "test", "statistic", "p_value", "p_method",
            "q_value", "significant", "cohort_a", "cohort_b", "cliffs_delta",
            "mean_difference", "ci_low", "ci_high", "dunn_p_adjusted", "duration_p_value",
            "duration_q_value", "duration_significant",
            *[f"mean_usage_{c}" for c in cohorts], *[f"median_duration_s_{c}" for c in cohorts],
        ]  # fmt: skip
        for s in result.syllables:
            base = [s.index, s.label, s.tested, s.test, s.statistic, s.p_value, s.p_method,
                    s.q_value, s.significant]  # fmt: skip
            dur = [s.duration_p_value, s.duration_q_value, s.duration_significant]
            tail = [s.mean_usage.get(c) for c in cohorts] + [
                s.median_duration_s.get(c) for c in cohorts
            ]
            if not s.pairwise:
                yield [*base, None, None, None, None, None, None, None, *dur, *tail]
            for p in s.pairwise:
                yield [*base, p.a, p.b, p.cliffs_delta, p.mean_difference, p.ci_low,
                       p.ci_high, p.dunn_p_adjusted, *dur, *tail]  # fmt: skip

    return _csv(rows())


def transitions_csv(design: Design, result: ComparisonPublic) -> str:
    """Transition matrices per cohort, tidy: the mean over animals of each animal's bigram
    probability, with and without self-transitions, for every pair seen in the cohort; and
    the test of each tested transition."""
    k = design.model.states
    labels = result.syllable_labels
    tests = {(r.source, r.target): r for r in result.transitions.results}
    groups = design.groups if design.animals else np.zeros(0, dtype=np.int64)

    def rows() -> Iterator[list[Any]]:
        yield [
            "cohort", "from_syllable", "from_name", "to_syllable", "to_name",
            "probability_without_self", "probability_with_self", "animals", "p_value",
            "q_value", "significant",
        ]  # fmt: skip
        for g, c in enumerate(result.cohorts):
            mine = [a for a, gg in zip(design.animals, groups, strict=True) if gg == g]
            if not mine:
                continue
            p0 = np.array([a.transition_probabilities(with_self=False) for a in mine])
            p1 = np.array([a.transition_probabilities(with_self=True) for a in mine])
            with _quiet():
                m0 = np.nanmean(p0, axis=0)
                m1 = np.nanmean(p1, axis=0)
            defined = np.sum(~np.isnan(p1), axis=0)
            for i in range(k):
                for j in range(k):
                    v1 = m1[i, j]
                    if math.isnan(v1) or v1 == 0:
                        continue
                    v0 = None if math.isnan(m0[i, j]) else round(float(m0[i, j]), 6)
                    t = tests.get((i, j))
                    yield [
                        c.name, i, labels[i], j, labels[j], v0, round(float(v1), 6),
                        int(defined[i, j]), t.p_value if t else None, t.q_value if t else None,
                        t.significant if t else None,
                    ]  # fmt: skip

    return _csv(rows())


def cohort_names(db: Session, experiment_id: int) -> list[Cohort]:
    """The experiment's cohorts (for the page's picker)."""
    return experiments.list_cohorts(db, experiment_id)
