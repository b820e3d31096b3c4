"""Do syllables mean the same behaviour in every cohort, whatever should not matter?

    python bench/invariance.py [--pairs mix,size,zoom,light,fps] [--animals 4] [--seconds 60]
                               [--engine svae|ghmm] [--null 0] [--null-first 0] [--planted 0]
                               [--cache DIR]

Each *pair* is two cohorts of synthetic animals (:mod:`model.synth`) that differ in one thing
only, with the same true behaviour in every other respect:

- ``mix``: the second cohort grooms, rears and runs 2.5x as often (the behaviour a drug might
  change; what each behaviour looks like is the same);
- ``size``: its animals are 15 % longer (same camera, same arena);
- ``zoom``: its camera gives 20 % more pixels per body length (the same scene, enlarged);
- ``light``: its video has 0.6x the gain and +40 grey levels of offset (less contrast, brighter);
- ``fps``: it is filmed at 15 frames per second instead of 30.

For each pair one model is fitted on both cohorts together (as the product does: one model per
experiment), every session is segmented, and the benchmark prints:

- the *syllable leak*: frame-weighted total variation distance between P(syllable | behaviour,
  cohort A) and P(syllable | behaviour, cohort B) (:func:`model.metrics.syllable_leak`;
  bar ≤ 0.10), with the behaviour mix pair's figure as the in-run baseline for the others
  (the mix pair is a leak too, but one no preprocessing can remove: the only cure is features
  that do not depend on the session);
- the *feature shift* behind it: per kinematic, how many within-behaviour standard deviations
  its mean moves between the cohorts (:func:`model.metrics.feature_shift`), and the largest over
  the crops' first 10 principal components;
- ARI against the truth and states used.

``--engine ghmm`` replaces the SVAE by a sticky Gaussian HMM on crop PCs and kinematics with the
true number of behaviours (seconds instead of minutes per pair, for a quick look at what the
features leak). ``--null N`` also runs N null designs per nuisance pair: cohorts of
``--animals`` animals with the same behaviour generator, each animal with its own seed, and
counts how often the page's statistics (Mann-Whitney U per syllable, Benjamini-Hochberg at
FDR 0.05) flag any syllable (bar: ≤ 10 % of designs); ``--null-only`` skips the pairs. With 4
animals a cohort no syllable can be flagged (the smallest exact p is 2/70 before the
correction): null designs and the flags of the mix pair need 6 or more. Each
null design draws its own animals (:func:`null_seed`), so designs are independent draws;
``--null-first K`` starts at design K, to add designs to an earlier run. ``--planted N`` runs N
designs per nuisance pair whose second cohort also has the mix pair's behaviour change; a
flagged syllable counts as a false alarm when its behaviour's true usage (the same test on
the true labels) did not change. ``--truth-null N`` runs the same test on the true labels of
N draws of animals (no video; the test's own false alarm rate, the floor for the null
designs). ``--cache DIR``
keeps rendered videos between runs (they depend only on the settings and seeds, never on the
code under test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory

import cv2
import numpy as np
import torch
from calibration import compare_usage

from model import metrics
from model.baselines import gaussian_hmm_fit_predict, pca_features
from model.features import Features, from_preprocessed
from model.kinematics import ALL_KINEMATIC_NAMES
from model.preprocess import preprocess_video
from model.rate import at_rate, model_rate
from model.segment import segment_features
from model.synth import BEHAVIOURS, render_session, write_video
from model.train import fit_features


@dataclass(frozen=True)
class Cohort:
    """How one cohort's videos are made."""

    fps: float = 30.0
    size: tuple[int, int] = (320, 240)
    body_length: float = 21.6  # px: 9 % of 240, the generator's default
    zoom: float = 1.0  # the rendered frames enlarged by this factor (more pixels per cm)
    gain: float = 1.0
    offset: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)

    def key(self, seed: int, seconds: float) -> str:
        text = json.dumps([asdict(self), seed, seconds], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


BASE = Cohort()
PAIRS: dict[str, Cohort] = {
    "mix": replace(BASE, weights={"groom": 2.5, "rear": 2.5, "run": 2.5}),
    "size": replace(BASE, body_length=BASE.body_length * 1.15),
    "zoom": replace(BASE, zoom=1.2),
    "light": replace(BASE, gain=0.6, offset=40.0),
    "fps": replace(BASE, fps=15.0),
}


def _frames(frames: Iterator[np.ndarray], cohort: Cohort) -> Iterator[np.ndarray]:
    """The camera's view: the rendered scene enlarged (a zoom enlarges everything, the camera's
    blur and noise included; rendering a larger mouse instead would also change how the
    generator rounds the tail's width to whole pixels), then gain and offset."""
    w, h = cohort.size
    zoomed = (round(w * cohort.zoom), round(h * cohort.zoom))
    for f in frames:
        if cohort.zoom != 1.0:
            f = cv2.resize(f, zoomed, interpolation=cv2.INTER_LINEAR)
        if cohort.gain != 1.0 or cohort.offset != 0.0:
            f = np.clip(f * cohort.gain + cohort.offset, 0, 255).astype(np.uint8)
        yield f


def session(cohort: Cohort, seed: int, seconds: float, cache: Path) -> tuple[Features, np.ndarray]:
    """One synthetic animal's session: its features and its true behaviour per frame."""
    stem = cache / cohort.key(seed, seconds)
    video = stem.with_suffix(".mp4")
    frames, truth = render_session(
        seconds,
        fps=cohort.fps,
        seed=seed,
        size=cohort.size,
        body_length=cohort.body_length,
        behaviour_weights=cohort.weights or None,
    )
    if not video.exists():
        partial = stem.with_suffix(".partial.mp4")
        write_video(partial, _frames(frames, cohort), cohort.fps)
        partial.rename(video)
    features = from_preprocessed(preprocess_video(video))
    return features, truth.behaviour[: features.n_frames]


def segment(engine: str, sessions: list[Features], seed: int) -> list[np.ndarray]:
    """Fit one model on every session, then segment each: per-frame syllables."""
    fps = model_rate([f.fps for f in sessions])
    if engine == "ghmm":
        shown, back = zip(*(at_rate(f, fps) for f in sessions), strict=True)
        kin = [f.kinematics() for f in shown]
        pcs = pca_features([f.crops_float() for f in shown], 10)
        allk = np.concatenate(kin)
        z = [(k - allk.mean(0)) / np.maximum(allk.std(0), 1e-6) for k in kin]
        scale = float(np.concatenate(pcs).std())
        feats = [np.concatenate([p / scale, k], 1) for p, k in zip(pcs, z, strict=True)]
        labels = gaussian_hmm_fit_predict(feats, len(BEHAVIOURS), seed=seed)
        return [lab[b] for lab, b in zip(labels, back, strict=True)]
    # As the worker does: one rate for the model, sessions resampled to it and back.
    torch.manual_seed(seed)
    model = fit_features(sessions)
    return [segment_features(model, f, keep_posterior=False).syllable for f in sessions]


def run_pair(
    name: str, args: argparse.Namespace, cache: Path, seed: int = 0
) -> dict[str, float | str]:
    t0 = time.perf_counter()
    a = [session(BASE, seed * 1000 + i, args.seconds, cache) for i in range(args.animals)]
    b = [
        session(PAIRS[name], seed * 1000 + 500 + i, args.seconds, cache)
        for i in range(args.animals)
    ]
    feats = [f for f, _ in a + b]
    truths = [t for _, t in a + b]
    labels = segment(args.engine, feats, seed)
    n = args.animals
    leak, per = metrics.syllable_leak(truths[:n], labels[:n], truths[n:], labels[n:])
    # What the model sees (at its frame rate), at each of the session's own frames.
    fps = model_rate([f.fps for f in feats])
    shown = [at_rate(f, fps) for f in feats]
    kin = [f.kinematics()[b] for f, b in shown]
    kshift = metrics.feature_shift(truths[:n], kin[:n], truths[n:], kin[n:])
    pcs = [
        p[b]
        for p, (_, b) in zip(
            pca_features([f.crops_float() for f, _ in shown], 10), shown, strict=True
        )
    ]
    pshift = metrics.feature_shift(truths[:n], pcs[:n], truths[n:], pcs[n:])
    worst = max(per, key=per.get) if per else 0
    usage = np.array(
        [[np.mean(lab == s) for s in range(int(max(map(np.max, labels))) + 1)] for lab in labels]
    )
    res = compare_usage(usage, np.repeat([0, 1], n), np.random.default_rng(seed))
    # Each flagged syllable as the behaviour most of its frames show (both cohorts together).
    flat_t, flat_l = np.concatenate(truths), np.concatenate(labels)
    flagged_as = [
        BEHAVIOURS[int(np.bincount(flat_t[flat_l == s], minlength=len(BEHAVIOURS)).argmax())]
        for s in res["flagged"]
    ]
    # What really changed: the same test on the true behaviours' usage per animal. A flagged
    # syllable whose behaviour did not change there is a false alarm.
    true_usage = np.array([[np.mean(t == b) for b in range(len(BEHAVIOURS))] for t in truths])
    truth = compare_usage(true_usage, np.repeat([0, 1], n), np.random.default_rng(seed))
    changed = {BEHAVIOURS[b] for b in truth["flagged"]}
    return {
        "pair": name,
        "leak": leak,
        "worst": f"{BEHAVIOURS[worst]} {per.get(worst, 0.0):.2f}",
        "ari": metrics.ari(truths, labels),
        "states": metrics.states_used(labels),
        "flagged": len(res["flagged"]),
        "flagged_as": ",".join(flagged_as),
        "changed": ",".join(sorted(changed)),
        "false_flags": sum(b not in changed for b in flagged_as),
        "pc_shift": float(pshift.max()),
        **{f"k_{k}": float(v) for k, v in zip(ALL_KINEMATIC_NAMES, kshift, strict=True)},
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--animals", type=int, default=4, help="animals per cohort")
    parser.add_argument("--seconds", type=float, default=60.0, help="per animal")
    parser.add_argument("--engine", choices=("svae", "ghmm"), default="svae")
    parser.add_argument("--null", type=int, default=0, help="null designs per nuisance pair")
    parser.add_argument("--null-only", action="store_true", help="only the null designs")
    parser.add_argument(
        "--null-first", type=int, default=0, help="number of the first null design (its seed)"
    )
    parser.add_argument(
        "--planted", type=int, default=0,
        help="designs per nuisance pair with the mix pair's behaviour change on top",
    )  # fmt: skip
    parser.add_argument(
        "--truth-null", type=int, default=0,
        help="draws of the test on the true labels alone (its own false alarm rate; no video)",
    )  # fmt: skip
    parser.add_argument("--cache", default=None, help="keep rendered videos here")
    args = parser.parse_args()
    names = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = set(names) - set(PAIRS)
    if unknown:
        parser.error(f"unknown pairs {sorted(unknown)}; known: {', '.join(PAIRS)}")
    with TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        print(
            f"{args.animals} + {args.animals} animals x {args.seconds:.0f} s per pair, "
            f"engine {args.engine}",
            flush=True,
        )
        if args.truth_null:
            _truth_null(args)
        if not args.null_only:
            _pairs(args, names, cache)
        if args.null:
            _null(args, names, cache)
        if args.planted:
            _planted(args, names, cache)


def _pairs(args: argparse.Namespace, names: list[str], cache: Path) -> None:
    rows = []
    for name in names:
        rows.append(run_pair(name, args, cache))
        print(json.dumps(rows[-1], default=str), flush=True)
    print()
    short = [k[2:] for k in rows[0] if k.startswith("k_")]
    head = ("pair", "leak", "worst behaviour", "ARI", "states", "flagged", "PC shift")
    print("{:6s} {:>6s} {:>18s} {:>6s} {:>6s} {:>7s} {:>8s}".format(*head), *short)
    for r in rows:
        ks = " ".join(f"{r['k_' + k]:.2f}" for k in short)
        print(
            f"{r['pair']:6s} {r['leak']:6.3f} {r['worst']:>18s} {r['ari']:6.3f} "
            f"{r['states']:6d} {r['flagged']:7d} {r['pc_shift']:8.2f}  {ks}"
        )
    base = next((r for r in rows if r["pair"] == "mix"), None)
    for r in rows:
        if base is not None and r is not base:
            ratio = float(r["leak"]) / max(float(base["leak"]), 1e-9)
            print(f"leak {r['pair']} / leak mix: {ratio:.2f}")
    met = all(float(r["leak"]) <= 0.10 for r in rows)
    print(f"bar: leak <= 0.10 in every pair: {'MET' if met else 'NOT MET'}")


def _null(args: argparse.Namespace, names: list[str], cache: Path) -> None:
    """Null designs: the second cohort differs only by the pair's nuisance (the mix pair is
    left out: it is a true difference), so any flagged syllable is a false alarm."""
    flagged_designs = designs = differ_in_truth = false_designs = 0
    for name in names:
        if name == "mix":
            continue
        nuisance = replace(PAIRS[name], weights={})
        PAIRS[f"null-{name}"] = nuisance
        for d in range(args.null_first, args.null_first + args.null):
            # Every (design, nuisance) draws its own animals, so designs are independent.
            r = run_pair(f"null-{name}", args, cache, seed=null_seed(name, d))
            designs += 1
            flagged_designs += int(r["flagged"]) > 0
            differ_in_truth += bool(r["changed"])
            false_designs += int(r["false_flags"]) > 0
            print(json.dumps(r, default=str), flush=True)
    if designs:
        share = flagged_designs / designs
        print(
            f"null designs with any syllable flagged at FDR 0.05: {flagged_designs}/{designs} "
            f"= {share:.2f} (bar <= 0.10: {'MET' if share <= 0.10 else 'NOT MET'}); "
            f"designs whose animals' true usage differs by the same test: "
            f"{differ_in_truth}/{designs}; designs flagging a syllable whose behaviour did not "
            f"change: {false_designs}/{designs}"
        )


def _truth_null(args: argparse.Namespace) -> None:
    """The comparison's test on the true behaviour usage of animals drawn from one generator:
    the floor for the null designs (a calibrated test flags at most ~5 % of them)."""
    n = args.animals
    flagged = 0
    for d in range(args.truth_null):
        usage = []
        for i in range(2 * n):
            _, truth = render_session(args.seconds, seed=10_000 + 100 * d + i)
            usage.append([np.mean(truth.behaviour == b) for b in range(len(BEHAVIOURS))])
        res = compare_usage(np.array(usage), np.repeat([0, 1], n), np.random.default_rng(d))
        flagged += len(res["flagged"]) > 0
    print(
        f"true labels alone, {n} + {n} animals from one generator: {flagged}/{args.truth_null} "
        f"draws flag any behaviour at FDR 0.05 (= {flagged / args.truth_null:.3f})",
        flush=True,
    )


def null_seed(pair: str, design: int) -> int:
    """Seed of null design ``design`` of a nuisance pair: distinct for every pair and design
    (the animals of design 0 of ``size`` are not those of design 0 of ``zoom``)."""
    return 300 + 10 * design + list(PAIRS).index(pair)


def _planted(args: argparse.Namespace, names: list[str], cache: Path) -> None:
    """Planted designs: the second cohort has the mix pair's behaviour change *and* the pair's
    nuisance. Flagged syllables should be those of behaviours whose true usage the same test
    flags; any other is a false alarm the nuisance caused."""
    false_designs = designs = changed = found = 0
    for name in names:
        if name == "mix":
            continue
        PAIRS[f"mix+{name}"] = replace(PAIRS[name], weights=PAIRS["mix"].weights)
        for d in range(args.planted):
            r = run_pair(f"mix+{name}", args, cache, seed=200 + d)
            designs += 1
            false_designs += int(r["false_flags"]) > 0
            truly = {b for b in str(r["changed"]).split(",") if b}
            changed += len(truly)
            found += len(truly & set(str(r["flagged_as"]).split(",")))
            print(json.dumps(r, default=str), flush=True)
    if designs:
        print(
            f"planted designs with a syllable flagged whose behaviour did not change: "
            f"{false_designs}/{designs}; behaviours whose true usage changed (by the same test) "
            f"with a syllable flagged: {found}/{changed}"
        )


if __name__ == "__main__":
    main()
