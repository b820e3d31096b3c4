"""CSV exports of a cohort comparison: per-animal usage, per-syllable statistics, transitions."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.comparison.design import Design
from app.comparison.schemas import (
    ComparisonPublic,
)
from app.comparison.service import _quiet


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
    "mean_speed_px_s", "kinematics_unit", "speed_in_syllable", "turning_deg_s_in_syllable",
    "body_length_in_syllable",
]  # fmt: skip


def _at(values: list[float | None], i: int) -> float | str:
    value = values[i] if i < len(values) else None
    return "" if value is None else value


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
                    a.distance_px, a.mean_speed_px_s, result.kinematics_unit,
                    _at(a.speed_in_syllable, i), _at(a.turning_deg_s_in_syllable, i),
                    _at(a.body_length_in_syllable, i),
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
