"""Cohort comparison over a segmented experiment: the statistics of a gathered design
(:mod:`app.comparison.design`) with :mod:`app.comparison.stats`, the warnings, and the methods
paragraph (:mod:`app.comparison.methods`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.comparison import nuisance, stats
from app.comparison.design import (
    ALPHA,
    DURATION_SAMPLE,
    MAX_MATRIX_SYLLABLES,
    MIN_TRANSITIONS_PER_ANIMAL,
    MIN_USAGE,
    SEED,
    Animal,
    Design,
    load_design,
)
from app.comparison.methods import methods_text
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
from app.core.errors import BadInput
from app.core.storage import Storage
from app.syllables.models import Syllable


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
    group_names = design.grouping.names() if design.grouping else {}
    labels = [
        group_names.get(i) or (syllable_rows[i].label if i in syllable_rows else f"syllable {i}")
        for i in range(k)
    ]
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
        kinematics_unit=design.kinematics_unit,
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


def _motion_lists(a: Animal) -> dict[str, list[float | None]]:
    means = a.motion_means()
    if means is None:
        return {}
    as_list = [[None if not np.isfinite(v) else round(float(v), 4) for v in row] for row in means]
    return dict(
        speed_in_syllable=as_list[0],
        turning_deg_s_in_syllable=as_list[1],
        body_length_in_syllable=as_list[2],
    )


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
        **_motion_lists(a),
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
