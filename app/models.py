"""Imports every ORM model so ``Base.metadata`` is complete (for Alembic and tests)."""

from app.core.db import Base
from app.experiments.models import Cohort, Experiment, Subject, VideoSession
from app.jobs.models import Job

__all__ = ["Base", "Cohort", "Experiment", "Job", "Subject", "VideoSession"]
