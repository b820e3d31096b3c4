"""A session as an NWB file (Neurodata Without Borders, read by pynwb and DANDI): the subject
and cohort, the mouse's track, the syllable of every frame and the bouts as an interval table.

Layout, so that scripts know where to look:

- ``nwb.subject``: subject id, species, sex, genotype, age (when written as ISO 8601), cohort in
  the description;
- ``processing["behavior"]["Position"]["centroid"]``: (T, 2) body centre in video pixels;
- ``processing["behavior"]["CompassDirection"]["heading"]``: (T,) radians;
- ``processing["behavior"]["syllables"]``: (T,) syllable index per frame (-1 unsegmented), with
  the names in its description and ``comments`` (JSON);
- ``intervals["syllable_bouts"]``: start_time, stop_time, syllable, syllable_name per bout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SessionRecord:
    """What an NWB file of a session holds, gathered by the export service."""

    session_id: int
    filename: str
    experiment: str
    model_version: int
    recorded_on: date | None
    created_at: datetime
    subject: str
    cohort: str
    sex: str
    age: str
    genotype: str
    times: np.ndarray  # (T,) s
    x: np.ndarray  # (T,) px
    y: np.ndarray
    heading: np.ndarray  # (T,) rad
    syllable: np.ndarray  # (T,) int, -1 where unsegmented
    bouts: np.ndarray  # (n, 3) start_frame, end_frame (exclusive), syllable
    bout_ends_s: np.ndarray  # (n,) s
    names: Mapping[int, str]


_SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}


def write_session_nwb(record: SessionRecord, path: Path) -> None:
    """Write ``record`` as an NWB 2 file at ``path``."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import CompassDirection, Position
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject

    start = (
        datetime(record.recorded_on.year, record.recorded_on.month, record.recorded_on.day,
                 tzinfo=UTC)
        if record.recorded_on
        else record.created_at.replace(tzinfo=UTC)
    )  # fmt: skip
    nwb = NWBFile(
        session_description=f"{record.filename}: top-down video segmented into behavioural "
        f"syllables by Syllabary model v{record.model_version}",
        identifier=str(uuid.uuid4()),
        session_start_time=start,
        session_id=str(record.session_id),
        experiment_description=record.experiment,
        source_script="Syllabary",
        source_script_file_name="app/exports/nwb.py",
    )
    age = record.age.strip()
    nwb.subject = Subject(
        subject_id=record.subject or f"session {record.session_id}",
        species="Mus musculus",
        sex=_SEX.get(record.sex.strip().lower(), "U"),
        genotype=record.genotype or None,
        age=age if age.upper().startswith("P") else None,  # NWB wants ISO 8601 (e.g. P90D)
        description="; ".join(
            part
            for part in (
                f"cohort: {record.cohort}" if record.cohort else "",
                f"age: {age}" if age and not age.upper().startswith("P") else "",
            )
            if part
        )
        or None,
    )
    behavior = nwb.create_processing_module(
        name="behavior", description="Tracking and syllables computed by Syllabary"
    )
    times = np.asarray(record.times, dtype=np.float64)
    position = Position(name="Position")
    centroid = position.create_spatial_series(
        name="centroid",
        data=np.column_stack([record.x, record.y]).astype(np.float32),
        timestamps=times,
        reference_frame="video pixels: (0, 0) the top-left corner, x to the right, y down",
        unit="pixels",
        description="the mouse's body centre (NaN where it was not found)",
    )
    behavior.add(position)
    compass = CompassDirection(name="CompassDirection")
    compass.create_spatial_series(
        name="heading",
        data=np.asarray(record.heading, dtype=np.float32),
        timestamps=centroid,  # the same frames: stored once
        reference_frame="radians in image coordinates (x right, y down)",
        unit="radians",
    )
    behavior.add(compass)
    used = sorted({int(k) for k in np.unique(record.syllable) if k >= 0})
    names = {k: record.names.get(k, f"syllable {k}") for k in used}
    behavior.add(
        TimeSeries(
            name="syllables",
            data=np.asarray(record.syllable, dtype=np.int16),
            timestamps=centroid,
            unit="n/a",
            description="syllable index per frame (-1: not segmented); "
            + "; ".join(f"{k} = {v}" for k, v in names.items()),
            comments=json.dumps({"model_version": record.model_version, "names": names}),
            continuity="step",
        )
    )
    intervals = TimeIntervals(
        name="syllable_bouts",
        description=f"runs of one syllable (Syllabary model v{record.model_version})",
    )
    intervals.add_column(name="syllable", description="syllable index")
    intervals.add_column(name="syllable_name", description="the name the lab gave the syllable")
    for (s, _e, k), stop in zip(record.bouts, record.bout_ends_s, strict=True):
        intervals.add_row(
            start_time=float(times[s]),
            stop_time=float(stop),
            syllable=int(k),
            syllable_name=str(record.names.get(int(k), f"syllable {k}")),
        )
    nwb.add_time_intervals(intervals)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwb)
