from __future__ import annotations

from pydantic import BaseModel, Field

from app.core.schemas import UtcDateTime


class AnnotationPublic(BaseModel):
    id: int
    session_id: int
    rater: str
    filename: str
    format: str = Field(description="frames, intervals or boris")
    behaviours: list[str]
    frame_count: int
    scored_frames: int
    notes: list[str]
    created_at: UtcDateTime


class AgreementPublic(BaseModel):
    """Syllables against a lab's labels, over the frames both describe."""

    model_id: int
    model_version: int
    rater: str
    session_ids: list[int]
    annotation_ids: list[int]
    frames: int = Field(description="frames scored by people and segmented by the model")
    syllables: list[int] = Field(description="rows of the contingency table (syllable indices)")
    syllable_labels: list[str]
    behaviours: list[str] = Field(description="columns of the contingency table")
    contingency: list[list[int]] = Field(description="frames per syllable (row) and behaviour")
    nmi: float
    ari: float
    accuracy: float = Field(
        description="share of frames right when each syllable names the behaviour it overlaps "
        "most (several syllables may name one behaviour)"
    )
    mapping: dict[str, str] = Field(description="syllable index -> the behaviour it names")
    f1: dict[str, float] = Field(description="per behaviour, under that mapping")
    boundary_tolerance_frames: int
    boundary_tolerance_s: float
    boundary_agreement: float = Field(
        description="share of the people's behaviour changes with a syllable change within "
        "the tolerance"
    )
    boundary_chance: float = Field(
        description="the same share for changes placed at random: the level to beat"
    )
    human_boundaries: int
