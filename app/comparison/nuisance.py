"""The guard against syllables that encode the session instead of the behaviour.

A drug-vs-control answer is only as good as the assumption that a syllable means the same
behaviour in both cohorts. The engine scales and normalises away what it can (body size, zoom,
brightness), but a lab should still hear, in words, when its cohorts were recorded differently
(larger animals, another camera, other lighting, another frame rate, worse tracking) and when
a syllable is used almost only by one cohort: together they are how a false result looks.

Each recording condition is read from what ingest measured per session (``VideoSession.quality``
and ``fps``), taken per animal as the median over its sessions, then per cohort as the median
over its animals. A condition *differs* when the cohort medians are further apart than a
threshold set well above what repeated recordings of the same set-up show, so the warning is
rare when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.comparison.schemas import ComparisonPublic, NuisanceCheck, SyllableResult
from app.experiments.models import VideoSession

# A syllable whose usage (mean over each cohort's animals) lies this much in one cohort is
# "used almost only by" it: a behaviour that changes with a drug rarely vanishes in controls.
EXCLUSIVE_SHARE = 0.9


@dataclass(frozen=True)
class Condition:
    """One recording condition: how to read it from a session, and when cohorts differ."""

    key: str
    words: str  # "the animals' body size in the video"
    unit: str
    read: Callable[[VideoSession], float | None]
    relative: bool  # compare as a ratio (sizes) or as a difference (shares, grey levels)
    threshold: float
    why: str  # what a difference can do to syllables


def _quality(name: str) -> Callable[[VideoSession], float | None]:
    def read(session: VideoSession) -> float | None:
        value = (session.quality or {}).get(name)
        return float(value) if isinstance(value, int | float) else None

    return read


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "body_size",
        "the animals' body size in the video",
        "px",
        _quality("median_body_length_px"),
        True,
        0.05,
        "larger animals or another camera zoom; crops are scaled to each animal, but a "
        "difference in shape (a larger animal is not just a zoomed one) can still move syllables",
    ),
    Condition(
        "floor_brightness",
        "the brightness of the arena floor",
        "grey levels",
        _quality("floor_brightness"),
        False,
        25.0,
        "other lighting, camera gain or arena",
    ),
    Condition(
        "contrast",
        "the contrast between animal and floor",
        "grey levels",
        _quality("contrast"),
        True,
        0.2,
        "other lighting, camera gain, fur colour or bedding",
    ),
    Condition(
        "fps",
        "the frame rate",
        "frames/s",
        lambda s: float(s.fps) if s.fps else None,
        True,
        0.02,
        "another camera setting; sessions are shown to the model at one rate, but movements "
        "faster than the lower rate can resolve are lost in its cohort",
    ),
    Condition(
        "fraction_no_mouse",
        "the share of frames without a tracked mouse",
        "",
        _quality("fraction_no_mouse"),
        False,
        0.05,
        "worse tracking (occlusion, lighting, the animal leaving the view)",
    ),
    Condition(
        "fraction_several_blobs",
        "the share of frames with more than one animal-sized object",
        "",
        _quality("fraction_several_blobs"),
        False,
        0.05,
        "other animals, hands or shadows in the view",
    ),
)


def _format(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:.1%}"
    return f"{value:.3g} {unit}"


def check_conditions(
    cohorts: Sequence[str], sessions_by_cohort: dict[str, list[list[VideoSession]]]
) -> list[NuisanceCheck]:
    """One check per condition measured in every cohort. ``sessions_by_cohort`` maps each
    cohort to its animals, each a list of sessions."""
    checks = []
    for cond in CONDITIONS:
        medians: dict[str, float] = {}
        for cohort in cohorts:
            per_animal = []
            for sessions in sessions_by_cohort.get(cohort, []):
                values = [v for v in (cond.read(s) for s in sessions) if v is not None]
                if values:
                    per_animal.append(float(np.median(values)))
            if per_animal:
                medians[cohort] = float(np.median(per_animal))
        if len(medians) < 2 or len(medians) < len(cohorts):
            continue
        low, high = min(medians.values()), max(medians.values())
        ratio = high / low - 1.0 if low > 0 else 0.0
        difference = ratio if cond.relative else high - low
        differs = difference > cond.threshold
        checks.append(
            NuisanceCheck(
                condition=cond.key,
                description=cond.words,
                unit=cond.unit,
                cohort_medians={c: round(v, 4) for c, v in medians.items()},
                difference=round(difference, 4),
                relative=cond.relative,
                threshold=cond.threshold,
                differs=differs,
                message=_message(cond, medians, difference) if differs else "",
            )
        )
    return checks


def _message(cond: Condition, medians: dict[str, float], difference: float) -> str:
    values = ", ".join(f"{c} {_format(v, cond.unit)}" for c, v in medians.items())
    if cond.key != "fps":
        size = f"{difference:.0%}" if cond.relative else _format(difference, cond.unit)
        values += f"; {size} apart"
    return f"These cohorts differ in {cond.words} ({values}): {cond.why}."


def exclusive_syllables(
    cohorts: Sequence[str], syllables: Sequence[SyllableResult]
) -> list[tuple[SyllableResult, str, float]]:
    """Tested syllables whose usage lies at least :data:`EXCLUSIVE_SHARE` in one cohort:
    (syllable, that cohort, its share)."""
    out = []
    for s in syllables:
        if not s.tested:
            continue
        usage = {c: s.mean_usage.get(c, 0.0) for c in cohorts}
        total = sum(usage.values())
        if total <= 0:
            continue
        cohort = max(usage, key=lambda c: usage[c])
        share = usage[cohort] / total
        if share >= EXCLUSIVE_SHARE:
            out.append((s, cohort, share))
    return out


def _names(syllables: Sequence[SyllableResult]) -> str:
    words = [s.label for s in sorted(syllables, key=lambda s: s.index)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def guard(result: ComparisonPublic) -> list[str]:
    """Warnings, in words, for the comparison page, its JSON and methods text: recording
    conditions that differ between cohorts, and syllables used almost only by one cohort,
    with the syllables to check before trusting a difference."""
    cohorts = [c.name for c in result.cohorts]
    out = []
    exclusive = exclusive_syllables(cohorts, result.syllables)
    for s, cohort, share in exclusive:
        out.append(
            f"{s.label} is used almost only by {cohort!r} ({share:.0%} of its usage): a syllable "
            "that one cohort rarely shows can encode how that cohort was recorded rather than "
            "what it did. Watch its example clips next to the nearest syllables of the other "
            "cohort before reporting it."
        )
    differing = [c for c in result.nuisances if c.differs]
    if differing:
        suspects = [s for s in result.syllables if s.significant] + [s for s, _, _ in exclusive]
        unique = list({s.index: s for s in suspects}.values())
        what = "it differs" if len(unique) == 1 else "they differ"
        check = (
            f" Check {_names(unique)} ({what} between cohorts or belong to one) in the "
            "example clips of both cohorts before trusting any difference."
            if unique
            else " No syllable differs between them now; look again after adding animals."
        )
        out.append(" ".join(c.message for c in differing) + check)
    return out


def methods_sentence(result: ComparisonPublic) -> str:
    """What the methods paragraph says about recording conditions."""
    if not result.nuisances:
        return ""
    names = [c.description for c in result.nuisances]
    differing = [c.description for c in result.nuisances if c.differs]
    checked = ", ".join(names)
    if differing:
        return (
            f"Recording conditions were compared between cohorts ({checked}); the cohorts "
            f"differed in {', '.join(differing)}, so differences in syllable usage may in part "
            "reflect how the cohorts were recorded."
        )
    return (
        f"Recording conditions were compared between cohorts ({checked}) and did not differ "
        "beyond set thresholds."
    )
