"""What the comparison API answers (Pydantic). Values per syllable are lists indexed by the
model's syllable index; ``None`` where a value is undefined (no bouts, too few animals)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnimalSummary(BaseModel):
    """One animal (subject): its sessions combined (frames and bouts summed)."""

    subject_id: int
    subject: str
    cohort: str
    session_ids: list[int]
    frames: int
    duration_s: float
    usage: list[float] = Field(description="fraction of frames in each syllable")
    bouts: list[int] = Field(description="number of bouts of each syllable")
    bouts_per_min: list[float]
    median_duration_s: list[float | None]
    mean_duration_s: list[float | None]
    distance_px: float | None = Field(None, description="path length of the body centre")
    mean_speed_px_s: float | None = None
    speed_in_syllable: list[float | None] = Field(
        default_factory=list, description="mean speed within each syllable (kinematics_unit/s)"
    )
    turning_deg_s_in_syllable: list[float | None] = Field(default_factory=list)
    body_length_in_syllable: list[float | None] = Field(
        default_factory=list, description="mean body length within each syllable"
    )


class PairwiseResult(BaseModel):
    """Two cohorts compared on one variable: effect sizes of ``b`` over ``a`` and, with more
    than two cohorts, Dunn's post-hoc test (Holm-adjusted over the pairs)."""

    a: str
    b: str
    cliffs_delta: float
    mean_difference: float
    ci_low: float
    ci_high: float
    dunn_z: float | None = None
    dunn_p: float | None = None
    dunn_p_adjusted: float | None = None


class SyllableResult(BaseModel):
    index: int
    label: str
    color: str
    gallery_url: str
    syllable_id: int | None = None
    clip_urls: list[str] = []
    tested: bool
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_method: str | None = None
    q_value: float | None = None
    significant: bool = False
    direction: str = Field("", description="'up' or 'down' in the last cohort vs the first")
    effect_size: float | None = Field(
        None, description="Cliff's delta (two cohorts) or the largest |delta| of any pair"
    )
    mean_usage: dict[str, float]
    median_duration_s: dict[str, float | None] = Field(
        description="median over the cohort's animals of each animal's median bout duration"
    )
    duration_p_value: float | None = Field(
        None, description="the same test on per-animal median bout durations"
    )
    duration_q_value: float | None = None
    duration_significant: bool = False
    pairwise: list[PairwiseResult] = []


class FingerprintPrediction(BaseModel):
    subject: str
    cohort: str
    predicted: str


class FingerprintResult(BaseModel):
    method: str
    ran: bool
    reason: str = ""
    accuracy: float | None = None
    chance: float | None = None
    null_mean: float | None = None
    p_value: float | None = None
    n_permutations: int | None = None
    exact: bool | None = None
    predictions: list[FingerprintPrediction] = []


class TransitionResult(BaseModel):
    source: int
    target: int
    source_label: str
    target_label: str
    mean_probability: dict[str, float]
    difference: float = Field(description="last cohort minus first")
    test: str
    statistic: float
    p_value: float
    p_method: str
    q_value: float
    significant: bool


class CohortTransitions(BaseModel):
    """Mean over animals of each animal's bigram probabilities (rows: from), over
    ``syllables`` (the order of the rows and columns)."""

    cohort: str
    without_self: list[list[float | None]]
    with_self: list[list[float | None]]


class TransitionsSummary(BaseModel):
    syllables: list[int]
    labels: list[str]
    cohorts: list[CohortTransitions]
    tested: int
    results: list[TransitionResult]


class LocomotionResult(BaseModel):
    measure: str
    unit: str
    means: dict[str, float | None]
    test: str | None = None
    p_value: float | None = None
    p_method: str | None = None
    cliffs_delta: float | None = None


class CohortSummary(BaseModel):
    name: str
    animals: int
    sessions: int


class DurationSample(BaseModel):
    """Bout durations (s) of one syllable in one cohort (a sample of at most a few hundred)."""

    index: int
    cohort: str
    durations_s: list[float]


class NuisanceCheck(BaseModel):
    """A recording condition compared between cohorts (per animal: median over its sessions;
    per cohort: median over its animals)."""

    condition: str
    description: str
    unit: str
    cohort_medians: dict[str, float]
    difference: float = Field(
        description="largest cohort median over the smallest, minus 1 (relative) or their "
        "difference (absolute)"
    )
    relative: bool
    threshold: float
    differs: bool
    message: str = ""


class ComparisonPublic(BaseModel):
    experiment_id: int
    model_id: int
    model_version: int
    cohorts: list[CohortSummary]
    alpha: float
    syllable_labels: list[str]
    syllable_colors: list[str]
    animals: list[AnimalSummary]
    syllables: list[SyllableResult] = Field(description="sorted by |effect size|, largest first")
    fingerprint: FingerprintResult
    transitions: TransitionsSummary
    locomotion: list[LocomotionResult]
    durations: list[DurationSample]
    warnings: list[str]
    nuisances: list[NuisanceCheck] = Field(
        default_factory=list,
        description="recording conditions (body size in the video, brightness, contrast, "
        "frame rate, tracking quality) compared between cohorts",
    )
    methods: str
    kinematics_unit: str = Field(
        "px", description="of the animals' motion per syllable: cm, body lengths or px"
    )
