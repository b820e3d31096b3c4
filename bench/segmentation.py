"""Segmentation quality and cost: the SVAE against k-means, a Gaussian HMM and a sticky AR-HMM,
all on the same egocentric crops of synthetic mouse videos with known behaviour (baselines
also once more with the SVAE's per-frame kinematics appended to their features).

    python bench/segmentation.py [--videos 10] [--seconds 60] [--seed 2026] [--fit-seed 0]

Prints, for each method: ARI, NMI and matched accuracy against ground truth, states used,
median syllable duration and wall time; then the SVAE's ratios against the best baseline.
Baselines are given the true number of behaviours (their best case); the SVAE gets its default
cap of 40 states and must leave the unneeded ones unused.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from model import metrics
from model.baselines import BASELINES, pca_features
from model.features import from_preprocessed
from model.preprocess import preprocess_video
from model.segment import segment_features
from model.synth import BEHAVIOURS, read_truth, write_dataset
from model.train import fit_features


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--states", type=int, default=40, help="the SVAE's cap on states")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--fit-seed", type=int, default=0, help="the SVAE fit's seed")
    parser.add_argument("--size", default="320x240")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pairs = write_dataset(
            tmp,
            n_videos=args.videos,
            seconds=args.seconds,
            seed=args.seed,
            polarity="both",
            size=(width, height),
        )
        t_render = time.perf_counter() - t0
        sessions, truths, crops, kinematics, fps = [], [], [], [], 30.0
        t0 = time.perf_counter()
        for video, truth_csv in pairs:
            features = from_preprocessed(preprocess_video(video))
            sessions.append(features)
            crops.append(features.crops_float())
            kinematics.append(features.kinematics())
            fps = features.fps
            labels, _ = read_truth(truth_csv)
            truths.append(labels[: features.n_frames])
        t_pre = time.perf_counter() - t0
    frames = sum(len(t) for t in truths)
    k_true = len(np.unique(np.concatenate(truths)))
    print(
        f"{args.videos} synthetic videos x {args.seconds:.0f} s = {frames} frames "
        f"({frames / fps / 60:.1f} min), {k_true} behaviours of {len(BEHAVIOURS)}, "
        f"both polarities, {width}x{height}"
    )
    print(f"render {t_render:.1f} s, preprocess {t_pre:.1f} s")

    results: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    pcs = pca_features(crops, 10)
    t_pca = time.perf_counter() - t0
    # The SVAE also sees per-frame kinematics; the baselines run on the PCs alone (as MoSeq
    # does) and once more with the same standardised kinematics appended, for a fair match.
    allk = np.concatenate(kinematics)
    z = [(k - allk.mean(0)) / np.maximum(allk.std(0), 1e-6) for k in kinematics]
    pc_scale = float(np.concatenate(pcs).std())
    with_kin = [np.concatenate([p / pc_scale, k], 1) for p, k in zip(pcs, z, strict=True)]
    for name, fit_predict in BASELINES.items():
        for label, feats in ((name, pcs), (f"{name}+kin", with_kin)):
            t0 = time.perf_counter()
            labels = fit_predict(feats, k_true, seed=0)
            elapsed = time.perf_counter() - t0 + t_pca
            results[label] = {**metrics.summary(truths, labels, fps), "seconds": elapsed}
            print(f"  {label} done in {elapsed:.1f} s", flush=True)

    t0 = time.perf_counter()
    # The product's path: fit_features / segment_features, as the worker calls them.
    model = fit_features(sessions, states=args.states, epochs=args.epochs, seed=args.fit_seed)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    svae_labels = [segment_features(model, f, keep_posterior=False).syllable for f in sessions]
    t_seg = time.perf_counter() - t0
    results["svae"] = {
        **metrics.summary(truths, svae_labels, fps),
        "seconds": t_fit + t_seg,
    }
    print(f"  svae fit {t_fit:.1f} s, segment {t_seg:.1f} s")

    print()
    header = ("method", "ARI", "NMI", "acc", "states", "median ms", "time s")
    print("{:18s} {:>6s} {:>6s} {:>6s} {:>7s} {:>10s} {:>8s}".format(*header))
    for name, r in results.items():
        print(
            f"{name:18s} {r['ari']:6.3f} {r['nmi']:6.3f} {r['accuracy']:6.3f} "
            f"{int(r['states_used']):7d} {1000 * r['median_bout_s']:10.0f} {r['seconds']:8.1f}"
        )
    best = max((n for n in results if n != "svae"), key=lambda n: results[n]["ari"])
    svae = results["svae"]
    print()
    ratio = svae["ari"] / max(results[best]["ari"], 1e-9)
    print(f"SVAE ARI / best baseline ({best}) ARI: {ratio:.2f}")
    print(f"SVAE time / {best} time: {svae['seconds'] / results[best]['seconds']:.2f}")
    print(
        f"bar: SVAE ARI >= 0.80 and above every baseline: "
        f"{'MET' if svae['ari'] >= 0.8 and svae['ari'] > results[best]['ari'] else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
