"""The engine's commands, added to the ``syllabary`` CLI: fit, segment, synth.

syllabary fit VIDEO... --out MODEL_DIR [--states 40] [--epochs N]
syllabary segment VIDEO... --model MODEL_DIR --out DIR
syllabary synth OUT_DIR [--videos 4] [--seconds 60]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from model.video import VideoError

if TYPE_CHECKING:  # the engine's heavy modules load only when a command runs
    from model.features import Features


def _preprocess(video: Path, crop_size: int, bar: tqdm) -> Features:
    from model.features import from_preprocessed
    from model.preprocess import preprocess_video

    def progress(done: int, total: int) -> None:
        bar.set_postfix_str(f"{video.name}: {done}/{total} frames")

    try:
        return from_preprocessed(preprocess_video(video, crop_size=crop_size, progress=progress))
    except VideoError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--states", default=40, show_default=True, help="most syllables the model may use")
@click.option("--epochs", default=None, type=int, help="training passes (default: automatic)")
@click.option("--crop-size", default=32, show_default=True)
@click.option("--seed", default=0, show_default=True)
def fit(
    videos: tuple[Path, ...],
    out_dir: Path,
    states: int,
    epochs: int | None,
    crop_size: int,
    seed: int,
) -> None:
    """Fit a syllable model to VIDEOS and save it in --out."""
    from model.train import fit_features

    features = []
    with tqdm(total=len(videos), desc="preprocessing", unit="video") as bar:
        for video in videos:
            features.append(_preprocess(video, crop_size, bar))
            bar.update(1)
    with tqdm(
        total=1000, desc="fitting", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}"
    ) as bar:

        def progress(fraction: float, message: str, metrics: dict) -> None:
            bar.n = int(fraction * 1000)
            bar.set_postfix_str(message[:60])
            bar.refresh()

        model = fit_features(
            features, states=states, epochs=epochs, seed=seed, progress=progress
        )
    model.summary["crop_size"] = crop_size  # segmenting must preprocess the same way
    model.save(out_dir)
    click.echo(f"saved model to {out_dir}")


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
def segment(videos: tuple[Path, ...], model_dir: Path, out_dir: Path) -> None:
    """Segment VIDEOS with a fitted model; write <stem>.ethogram.csv and <stem>.bouts.csv."""
    from model.artifact import FittedModel
    from model.ethogram import bouts_chunks, ethogram_chunks
    from model.segment import segment_features

    fitted = FittedModel.load(model_dir)
    names = _names(model_dir, fitted.states)
    crop = int(fitted.summary.get("crop_size", 32))
    out_dir.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(videos), desc="segmenting", unit="video") as bar:
        for video in videos:
            features = _preprocess(video, crop, bar)
            try:
                seg = segment_features(fitted, features, keep_posterior=False)
            except ValueError as exc:  # a model fitted on crops framed otherwise, in words
                raise click.ClickException(f"{video.name}: {exc}") from exc
            quality = [features.quality_names[q] for q in features.quality]
            with (out_dir / f"{video.stem}.ethogram.csv").open("w", newline="") as fh:
                for chunk in ethogram_chunks(
                    syllable=seg.syllable,
                    probability=seg.probability,
                    times=features.times,
                    names=names,
                    scalars=features.scalars,
                    quality=quality,
                ):
                    fh.write(chunk)
            with (out_dir / f"{video.stem}.bouts.csv").open("w", newline="") as fh:
                for chunk in bouts_chunks(
                    bouts=seg.bouts,
                    times=features.times,
                    fps=features.fps,
                    names=names,
                ):
                    fh.write(chunk)
            bar.update(1)
    click.echo(f"wrote ethograms and bouts for {len(videos)} video(s) to {out_dir}")


def _names(model_dir: Path, states: int) -> dict[int, str]:
    """Syllable names from ``names.json`` in the model folder, if a lab wrote one."""
    path = model_dir / "names.json"
    names = {k: f"syllable {k}" for k in range(states)}
    if path.exists():
        names.update({int(k): str(v) for k, v in json.loads(path.read_text()).items()})
    return names


@click.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--videos", default=4, show_default=True)
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--polarity", type=click.Choice(["dark", "bright", "both"]), default="both")
def synth(out_dir: Path, videos: int, seconds: float, seed: int, polarity: str) -> None:
    """Write synthetic mouse videos with ground-truth behaviour labels to OUT_DIR."""
    from model.synth import write_dataset

    pairs = write_dataset(out_dir, n_videos=videos, seconds=seconds, seed=seed, polarity=polarity)
    click.echo(f"wrote {len(pairs)} videos with ground truth to {out_dir}")


COMMANDS = [fit, segment, synth]
