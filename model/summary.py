"""Typed results of the engine that the app stores: torch-free, so the web process can read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FitSummary:
    """What a fit reports that the app stores and reads back: the typed contract between the
    engine and the app (``FittedModel.summary`` keeps every figure, for model.json)."""

    states_used: int
    median_duration_ms: float  # median bout over all sessions
    frames: int
    fit_seconds: float
    usage: tuple[float, ...] = ()
    crop_framing: int = 1  # how the sessions' crops were framed (model.preprocess.CROP_FRAMING)
    crop_size: int = 32

    @property
    def median_duration_s(self) -> float:
        return self.median_duration_ms / 1000.0

    @classmethod
    def from_dict(cls, summary: Mapping[str, Any]) -> FitSummary:
        """Read a fit's summary dict; a fit that did not report a required figure is a bug."""
        required = ("states_used", "median_duration_ms", "frames", "fit_seconds")
        missing = [k for k in required if summary.get(k) is None]
        if missing:
            raise ValueError(f"the fit's summary lacks {', '.join(missing)}")
        return cls(
            states_used=int(summary["states_used"]),
            median_duration_ms=float(summary["median_duration_ms"]),
            frames=int(summary["frames"]),
            fit_seconds=float(summary["fit_seconds"]),
            usage=tuple(float(u) for u in summary.get("usage", ())),
            crop_framing=int(summary.get("crop_framing", 1)),
            crop_size=int(summary.get("crop_size", 32)),
        )
