"""Does the fit keep its quality, time and memory as the experiment grows?

    python bench/fit_scale.py [--minutes 10,60] [--animals 6] [--size 240x240] [--seed 7]
                              [--smoother auto] [--steps 0] [--cache DIR] [--jobs 1]

For each total length in ``--minutes`` (split over ``--animals`` synthetic animals of
:mod:`model.synth`, same generator, same behaviours), the sessions are rendered, preprocessed
and stored as feature files, ``--jobs`` sessions at a time (``--cache`` keeps them between
runs), then one fit runs in a child process that reads them memory-mapped, as a worker does.
Printed per size and device: fit seconds, peak resident memory of the fitting process (GiB),
ARI against the truth, states used (and stage B's, before stage C), the ARI of stage B's
first segmentation and of the first segmentation after stage C (before short-lived states
are switched off: "ARI B/C"), median bout (ms), and two ratios against the smallest size of
the same run (the baseline): time per frame, and ARI minus the baseline's. The CPU is
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from model import metrics
from model.features import from_preprocessed, load, save
from model.preprocess import preprocess_video
from model.synth import read_truth, write_session


def _session(folder: Path, index: int, seconds: float, seed: int, size: tuple[int, int]):
    """Session ``index`` of a data set, rendered and preprocessed unless already there."""
    video = folder / f"session_{index:03d}.mp4"
    if not video.exists():
        partial = folder / f"partial_{index:03d}"
        written, truth = write_session(partial, index, seconds=seconds, seed=seed, size=size)
        truth.rename(video.with_suffix(".truth.csv"))
        written.rename(video)
        partial.rmdir()
    feat = video.with_suffix(".features.npz")
    if not feat.exists():
        partial_feat = video.with_suffix(".partial.npz")
        save(from_preprocessed(preprocess_video(video)), partial_feat)
        partial_feat.rename(feat)
    return feat, video.with_suffix(".truth.csv")


def _dataset(
    minutes: float, animals: int, size: tuple[int, int], seed: int, cache: Path, jobs: int = 1
):
    """Feature files and truths of ``animals`` sessions that add up to ``minutes``, the
    sessions rendered and preprocessed ``jobs`` at a time."""
    folder = cache / f"{minutes:g}min-{animals}x-{size[0]}x{size[1]}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    seconds = 60.0 * minutes / animals
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(_session, folder, i, seconds, seed, size) for i in range(animals)]
        return [f.result() for f in futures]


def _watch_stages(features: list, truths: list[np.ndarray]) -> dict[str, float]:
    """ARI against the truth of each segmentation the fit makes on its way (filled in while it
    runs): "B", stage B's first segmentation of the training subsequences, then "C1", "C2", ...,
    each segmentation of the sessions after stage C (before and after switching off
    short-lived states). Tells which stage loses what the final ARI lacks."""
    import model.train as train

    found: dict[str, float] = {}
    seq_len = train.TrainSettings().seq_len
    frames = [
        min(f.crops.shape[0], len(t)) // seq_len * seq_len
        for f, t in zip(features, truths, strict=True)
    ]
    ghmm, segment = train.fit_sticky_ghmm, train._segment_sessions

    def watched_ghmm(*a, **k):
        out = ghmm(*a, **k)
        cut = np.concatenate([t[:n] for t, n in zip(truths, frames, strict=True)])
        found["B"] = metrics.ari([cut], [out[0].argmax(-1).reshape(-1).numpy()])
        return out

    def watched_segment(*a, **k):
        labels = segment(*a, **k)
        cut = [t[: len(lab)] for t, lab in zip(truths, labels, strict=True)]
        found[f"C{sum(key.startswith('C') for key in found) + 1}"] = metrics.ari(cut, labels)
        return labels

    train.fit_sticky_ghmm, train._segment_sessions = watched_ghmm, watched_segment
    return found


def _child(args: argparse.Namespace) -> None:
    """Fit on the feature files given, segment them, print one JSON line (in the child)."""
    from model.segment import segment_features
    from model.train import TrainSettings, fit_features

    files = json.loads(args.child)
    features = [load(f) for f, _ in files]
    truths = [read_truth(t)[0] for _, t in files]  # read once, for every stage's ARI
    stage_ari = _watch_stages(features, truths)
    t0 = time.perf_counter()
    settings = TrainSettings(steps_a=args.steps, steps_c=args.steps)
    fitted = fit_features(features, seed=args.seed, device=args.device, settings=settings)
    fit_s = time.perf_counter() - t0
    labels = [segment_features(fitted, f, keep_posterior=False).syllable for f in features]
    truths = [t[: len(lab)] for t, lab in zip(truths, labels, strict=True)]
    row = json.dumps({
        "fit_s": fit_s,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "ari": metrics.ari(truths, labels),
        "states": metrics.states_used(labels),
        "median_ms": 1000 * metrics.median_bout_duration(labels, features[0].fps),
        "frames": int(sum(len(lab) for lab in labels)),
        "steps": [fitted.summary["steps_a"], fitted.summary["steps_c"]],
        "stage_b_states": fitted.summary["stage_b_states"],
        "stage_ari": stage_ari,
    })  # fmt: skip
    # Kept beside the data set too, so that a long run's figures outlive its terminal.
    Path(files[0][0]).with_name(f"fit-{args.device}.json").write_text(row + "\n")
    print(row)


def _stages(found: dict[str, float]) -> str:
    return "/".join(f"{found[k]:.2f}" for k in ("B", "C1") if k in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="10,60")
    parser.add_argument("--animals", type=int, default=6)
    parser.add_argument("--size", default="240x240")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoother", choices=("auto", "parallel", "sequential"), default="auto")
    parser.add_argument("--steps", type=int, default=0, help="steps per stage (0: the rule)")
    parser.add_argument("--cache", default=None)
    parser.add_argument("--jobs", type=int, default=1, help="sessions rendered at a time")
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
        f"{'stage B':>7s} {'ARI B/C':>11s} {'median ms':>9s} {'s/frame ratio':>13s} "
        f"{'ΔARI':>6s} {'speed-up':>8s}"
    )
    with TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        base: dict[str, dict] = {}
        for minutes in [float(m) for m in args.minutes.split(",")]:
            files = _dataset(minutes, args.animals, size, args.seed, cache, args.jobs)
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
                    f"{_stages(row['stage_ari']):>11s} {row['median_ms']:9.0f} "
                    f"{per_frame:13.2f} {row['ari'] - first['ari']:+6.3f} {speed:8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
