"""End-to-end segmentation speed and memory on a long real video.

    python bench/segment_speed.py            # 11-minute 640x480 video (the tracktor clip x2)
    python bench/segment_speed.py --copies 11  # about an hour (110k frames): peak memory

Baseline, in the same process: merely decoding the file (the physical floor), every frame with
the deblocking filter, the faster of FFmpeg's threading and one thread. Preprocessing decodes
with one thread beside its tracker and without deblocking; that decode alone is printed too.
The pipeline is what `syllabary segment` does: decode, preprocess (mouse track, egocentric
crops), infer syllables with a fitted model, write the ethogram and bouts CSVs.
Bars (issue 3): segmenting takes at most 2x the decoding time; an hour stays under 4 GiB.

The model is fitted (on the original clip, not timed) in a child process and loaded from disk,
as `syllabary segment` does, so the peak RSS printed is that of segmenting, not of fitting.
CPU seconds are printed beside wall seconds: on a shared machine they show how much of a
difference is ours.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _videos import REPO, TRACKTOR, looped

# This checkout's engine, not whichever one an editable install points at.
sys.path.insert(0, str(REPO))
from model.artifact import FittedModel
from model.ethogram import bouts_chunks, ethogram_chunks
from model.features import from_preprocessed
from model.preprocess import preprocess_video, tracking_frames
from model.preprocess.track import _decode_threads
from model.segment import segment_frames
from model.train import fit_model


def decode_only(path: Path, threads: int = 0) -> tuple[int, float]:
    """A plain decode of every frame, deblocking included; ``threads`` 0 is FFmpeg's choice
    (frame threads on every core). The baseline is the faster of that and one thread: on two
    cores frame threading is not always the faster."""
    t0 = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        n = sum(1 for _ in container.decode(stream))
    return n, time.perf_counter() - t0


def decode_as_preprocessing(path: Path) -> float:
    """For reference, not the bar: the decode that preprocessing runs (one thread beside the
    tracker, no deblocking filter) on its own."""
    t0 = time.perf_counter()
    sum(1 for _ in tracking_frames(path))
    return time.perf_counter() - t0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _fit(model_dir: str, states: int) -> None:
    import torch

    # Not timed. One thread: on a shared machine torch's spinning workers make it 5x slower.
    torch.set_num_threads(1)
    features = from_preprocessed(preprocess_video(TRACKTOR))
    model = fit_model(
        [features.crops_float()], [features.kinematics()], states=states, epochs=2
    )
    model.save(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--states", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = looped(TRACKTOR, Path(tmp) / "long.mp4", args.copies)
        # A model fitted on the original clip (not timed: fitting is its own benchmark).
        t0 = time.perf_counter()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            pool.submit(_fit, str(Path(tmp) / "model"), args.states).result()
        model = FittedModel.load(Path(tmp) / "model")
        print(f"(model fitted in {time.perf_counter() - t0:.0f} s, not counted)")

        c0 = _cpu()
        n, t_auto = decode_only(video)
        c_decode = _cpu() - c0
        _, t_one = decode_only(video, threads=1)
        t_decode = min(t_auto, t_one)
        t_own_decode = decode_as_preprocessing(video)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        c0 = _cpu()
        t0 = time.perf_counter()
        pre = preprocess_video(video)
        t_pre = time.perf_counter() - t0
        features = from_preprocessed(pre)
        del pre
        crops = features.crops_float()
        t1 = time.perf_counter()
        seg = segment_frames(model, crops, features.kinematics(model.config.kin_recipe),
                             keep_posterior=False)
        t_infer = time.perf_counter() - t1
        del crops
        t2 = time.perf_counter()
        names = {k: f"syllable {k}" for k in range(args.states)}
        with open(Path(tmp) / "long.ethogram.csv", "w") as fh:
            for chunk in ethogram_chunks(
                syllable=seg.syllable,
                probability=seg.probability,
                times=features.times,
                names=names,
                scalars=features.scalars,
            ):
                fh.write(chunk)
        with open(Path(tmp) / "long.bouts.csv", "w") as fh:
            for chunk in bouts_chunks(
                bouts=seg.bouts, times=features.times, fps=features.fps, names=names
            ):
                fh.write(chunk)
        t_csv = time.perf_counter() - t2
        total = time.perf_counter() - t0
        c_total = _cpu() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    minutes = n / 30 / 60
    print(f"video: {n} frames 640x480 ({minutes:.1f} min)")
    print(
        f"  decode only (baseline): {t_decode:7.1f} s  (FFmpeg's threads {t_auto:.1f} s, "
        f"CPU {c_decode:.1f} s; one thread {t_one:.1f} s)"
    )
    print(
        f"  (preprocessing's own decode, {_decode_threads()} thread(s), no deblocking: "
        f"{t_own_decode:.1f} s alone)"
    )
    print(
        f"  segment end to end:     {total:7.1f} s  (preprocess {t_pre:.1f}, infer {t_infer:.1f}, "
        f"CSVs {t_csv:.1f}; CPU {c_total:.1f} s)"
    )
    print(f"  ratio segment / decode: {total / t_decode:7.2f}   (bar: <= 2)")
    print(
        f"  peak RSS {peak:.0f} MiB (before segmenting {rss_before:.0f} MiB)   (bar: < 4096 MiB "
        "for an hour)"
    )
    print(f"  syllables used: {len(np.unique(seg.syllable))}")


if __name__ == "__main__":
    main()
