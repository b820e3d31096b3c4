"""Imports every ORM model so ``Base.metadata`` is complete (for Alembic and tests)."""

from app.accounts.models import ApiToken, LabGroup, LoginSession, Membership, User
from app.annotations.models import Annotation
from app.core.db import Base
from app.experiments.models import Cohort, Experiment, Subject, VideoSession
from app.jobs.models import Job
from app.syllables.models import (
    Bout,
    Segmentation,
    Syllable,
    SyllableGrouping,
    SyllableModel,
)
from app.uploads.models import Upload

__all__ = [
    "Annotation",
    "ApiToken",
    "Base",
    "Bout",
    "Cohort",
    "Experiment",
    "Job",
    "LabGroup",
    "LoginSession",
    "Membership",
    "Segmentation",
    "Subject",
    "Syllable",
    "SyllableGrouping",
    "SyllableModel",
    "Upload",
    "User",
    "VideoSession",
]
