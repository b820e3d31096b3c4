"""Does the fit keep its quality, time and memory as the experiment grows?

    python bench/fit_scale.py [--minutes 10,60] [--animals 6] [--size 240x240] [--seed 7]
                              [--smoother auto] [--steps 0] [--cache DIR]

For each total length in ``--minutes`` (split over ``--animals`` synthetic animals of
:mod:`model.synth`, same generator, same behaviours), the sessions are rendered, preprocessed
and stored as feature files (``--cache`` keeps them between runs), then one fit runs in a
child process that reads them memory-mapped, as a worker does. Printed per size and device:
fit seconds, peak resident memory of the fitting process (GiB), ARI against the truth, states
used (and stage B's, before stage C), median bout (ms), and two ratios against the smallest
size of the same run (the baseline): time per frame, and ARI minus the baseline's. The CPU is
always run; CUDA too when a GPU is present, printed beside it with its speed-up. Each fit's
figures are also written beside its data set (``fit-<device>.json``). ``--smoother`` sets
``SYLLABARY_SMOOTHER`` for the fits (auto, parallel, sequential); ``--steps N`` fixes the
training steps of stages A and C (0: the fit's own rule, ``model.train.default_steps``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from model import metrics
from model.features import from_preprocessed, load, save
from model.preprocess import preprocess_video
from model.synth import read_truth, write_dataset


def _dataset(minutes: float, animals: int, size: tuple[int, int], seed: int, cache: Path):
    """Feature files and truths of ``animals`` sessions that add up to ``minutes``."""
    folder = cache / f"{minutes:g}min-{animals}x-{size[0]}x{size[1]}-s{seed}"
    seconds = 60.0 * minutes / animals
    pairs = sorted(folder.glob("*.mp4"))
    if len(pairs) != animals:
        write_dataset(folder, n_videos=animals, seconds=seconds, seed=seed, size=size)
        pairs = sorted(folder.glob("*.mp4"))
    out = []
    for video in pairs:
        feat = video.with_suffix(".features.npz")
        if not feat.exists():
            partial = video.with_suffix(".partial.npz")
            save(from_preprocessed(preprocess_video(video)), partial)
            partial.rename(feat)
        out.append((feat, video.with_suffix(".truth.csv")))
    return out


def _child(args: argparse.Namespace) -> None:
    """Fit on the feature files given, segment them, print one JSON line (in the child)."""
    from model.segment import segment_features
    from model.train import TrainSettings, fit_features

    files = json.loads(args.child)
    features = [load(f) for f, _ in files]
    t0 = time.perf_counter()
    settings = TrainSettings(steps_a=args.steps, steps_c=args.steps)
    fitted = fit_features(features, seed=args.seed, device=args.device, settings=settings)
    fit_s = time.perf_counter() - t0
    labels = [segment_features(fitted, f, keep_posterior=False).syllable for f in features]
    truths = [read_truth(t)[0][: len(lab)] for (_, t), lab in zip(files, labels, strict=True)]
    row = json.dumps({
        "fit_s": fit_s,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "ari": metrics.ari(truths, labels),
        "states": metrics.states_used(labels),
        "median_ms": 1000 * metrics.median_bout_duration(labels, features[0].fps),
        "frames": int(sum(len(lab) for lab in labels)),
        "steps": [fitted.summary["steps_a"], fitted.summary["steps_c"]],
        "stage_b_states": fitted.summary["stage_b_states"],
    })  # fmt: skip
    # Kept beside the data set too, so that a long run's figures outlive its terminal.
    Path(files[0][0]).with_name(f"fit-{args.device}.json").write_text(row + "\n")
    print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="10,60")
    parser.add_argument("--animals", type=int, default=6)
    parser.add_argument("--size", default="240x240")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoother", choices=("auto", "parallel", "sequential"), default="auto")
    parser.add_argument("--steps", type=int, default=0, help="steps per stage (0: the rule)")
    parser.add_argument("--cache", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    import torch

    size = tuple(int(v) for v in args.size.lower().split("x"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    env = {**os.environ, "SYLLABARY_SMOOTHER": args.smoother}
    print(f"{args.animals} animals, {args.size}, smoother {args.smoother}, devices {devices}")
    print(
        f"{'minutes':>7s} {'device':6s} {'fit s':>8s} {'peak GiB':>8s} {'ARI':>6s} {'states':>6s} "
        f"{'stage B':>7s} {'median ms':>9s} {'s/frame ratio':>13s} {'ΔARI':>6s} {'speed-up':>8s}"
    )
    with TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        base: dict[str, dict] = {}
        for minutes in [float(m) for m in args.minutes.split(",")]:
            files = _dataset(minutes, args.animals, size, args.seed, cache)
            rows = {}
            for device in devices:
                listing = json.dumps([[str(f), str(t)] for f, t in files])
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", listing, "--device", device,
                     "--seed", str(args.seed), "--steps", str(args.steps)],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows[device] = row
                first = base.setdefault(device, row)
                per_frame = (row["fit_s"] / row["frames"]) / (first["fit_s"] / first["frames"])
                speed = rows["cpu"]["fit_s"] / row["fit_s"]
                print(
                    f"{minutes:7g} {device:6s} {row['fit_s']:8.1f} {row['peak_gib']:8.2f} "
                    f"{row['ari']:6.3f} {row['states']:6d} {row['stage_b_states']:7d} "
                    f"{row['median_ms']:9.0f} "
                    f"{per_frame:13.2f} {row['ari'] - first['ari']:+6.3f} {speed:8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
