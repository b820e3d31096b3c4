"""Feature files round-trip; the CSVs follow the column contract; the CLI runs end to end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from model.ethogram import (
    BOUT_COLUMNS,
    ETHOGRAM_COLUMNS,
    bouts_chunks,
    bouts_from_labels,
    ethogram_chunks,
)
from model.features import Features, load, save


def make_features(n: int = 50) -> Features:
    rng = np.random.default_rng(0)
    return Features(
        crops=rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8),
        scalars={"x": rng.normal(size=n), "y": rng.normal(size=n)},
        quality=np.zeros(n, dtype=np.int8),
        times=np.arange(n) / 30.0,
        fps=30.0,
        summary={"frames": n},
    )


def test_features_round_trip_with_memory_mapped_crops(tmp_path: Path) -> None:
    features = make_features()
    save(features, tmp_path / "f.npz")
    loaded = load(tmp_path / "f.npz")
    assert isinstance(loaded.crops, np.memmap)
    np.testing.assert_array_equal(loaded.crops, features.crops)
    np.testing.assert_array_equal(loaded.scalars["y"], features.scalars["y"])
    assert loaded.fps == 30.0 and loaded.summary == {"frames": 50}
    assert loaded.crops_float().max() <= 1.0
    np.testing.assert_array_equal(load(tmp_path / "f.npz", mmap=False).crops, features.crops)


def test_ethogram_and_bouts_csv_follow_the_contract() -> None:
    labels = np.array([2, 2, 2, 0, 0, 1, 1, 1, 1, 2])
    times = np.arange(10) / 10.0
    names = {0: "rear", 1: "", 2: "walk"}
    text = "".join(
        ethogram_chunks(
            syllable=labels,
            probability=np.full(10, 0.9),
            times=times,
            names=names,
            scalars={"x": np.arange(10.0)},
            chunk_rows=3,
        )
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0][:5]) == ETHOGRAM_COLUMNS and rows[0][5] == "x"
    assert len(rows) == 11 and [int(r[0]) for r in rows[1:]] == list(range(10))
    assert rows[4][3] == "rear" and rows[6][3] == "syllable 1"

    bouts = bouts_from_labels(labels)
    text = "".join(bouts_chunks(bouts=bouts, times=times, fps=10.0, names=names))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == BOUT_COLUMNS
    assert [(int(r["start_frame"]), int(r["end_frame"])) for r in rows] == [
        (0, 3),
        (3, 5),
        (5, 9),
        (9, 10),
    ]
    assert float(rows[0]["end_s"]) == 0.3 and float(rows[-1]["end_s"]) == 1.0
    assert sum(float(r["duration_s"]) for r in rows) == np.float64(1.0).round(6)


def test_cli_synth_fit_segment(tmp_path: Path) -> None:
    from app.cli import main

    runner = CliRunner()
    result = runner.invoke(
        main, ["synth", str(tmp_path / "syn"), "--videos", "1", "--seconds", "8"]
    )
    assert result.exit_code == 0, result.output
    video = tmp_path / "syn" / "session_000.mp4"
    result = runner.invoke(
        main, ["fit", str(video), "--out", str(tmp_path / "m"), "--states", "4", "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["segment", str(video), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "o" / "session_000.ethogram.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0][:5]) == ETHOGRAM_COLUMNS
    assert len(rows) - 1 == 240  # 8 s at 30 fps: one row per frame
    assert (tmp_path / "o" / "session_000.bouts.csv").exists()


def test_cli_reports_bad_videos_clearly(tmp_path: Path) -> None:
    from app.cli import main

    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    result = CliRunner().invoke(main, ["fit", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "bad.mp4" in result.output and "not a video" in result.output
