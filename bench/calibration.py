"""Calibration of the cohort comparison on null data: both cohorts drawn from the same
behaviour generator, so every syllable flagged is a false positive.

    python bench/calibration.py [--draws 500] [--animals 5] [--cohorts 2] [--seconds 600]
                                [--animal-sd 0.2] [--seed 2026]

Per-animal behaviour is simulated straight from the semi-Markov generator of
:mod:`model.synth` (its jump chain :func:`model.synth.transition_matrix` and its gamma bout
durations, clipped to 0.3-1 s), without rendering video: the comparison sees one label per frame
per animal, i.e. a perfect segmentation. Each animal gets its own individuality: every
behaviour's entry weight is multiplied by a log-normal factor (``--animal-sd``, the SD of its
log), the same way for both cohorts. The statistics are those the comparison page runs
(:func:`app.comparison.stats.group_test` per syllable with at least 0.5% of the frames,
Benjamini–Hochberg across syllables at FDR 0.05, the leave-one-animal-out fingerprint).

Prints the false-positive rate per syllable test (flagged / tested) and its ratio to the nominal
5%, the share of draws with any syllable flagged (BH bounds it by 5% under the global null), the
fingerprint's false-positive rate at p <= 0.05, and the mean p-value.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping

import numpy as np

from app.comparison import stats
from app.comparison.design import MIN_USAGE
from model.synth import _GAMMA_SHAPE, _MAX_BOUT, _MIN_BOUT, _PARAMS, BEHAVIOURS, transition_matrix

ALPHA = 0.05
FPS = 30.0
MEAN_DURATION = np.array([_PARAMS[b]["dur"] for b in BEHAVIOURS])


def animal_weights(
    rng: np.random.Generator, base: Mapping[str, float] | None, animal_sd: float
) -> np.ndarray:
    """(K,) entry weights of one animal: the cohort's weights times its individuality."""
    w = np.ones(len(BEHAVIOURS))
    for name, value in (base or {}).items():
        w[BEHAVIOURS.index(name)] = value
    return w * np.exp(rng.normal(0.0, animal_sd, len(w))) if animal_sd > 0 else w


def simulate_bouts(
    rng: np.random.Generator, weights: np.ndarray, seconds: float, fps: float = FPS
) -> tuple[np.ndarray, np.ndarray]:
    """One session of the synthetic generator's semi-Markov chain, labels only.

    Returns ``(behaviour, frames)``: (B,) behaviour id of each bout and (B,) its length in
    frames (they sum to ``round(seconds * fps)``). The same law as ``model.synth._simulate``:
    a jump chain without self-transitions, gamma(8) bout lengths clipped to 0.3-1 s.
    """
    trans = transition_matrix(weights)
    cum = np.cumsum(trans, axis=1)
    entry = trans.sum(axis=0)
    n_frames = round(seconds * fps)
    max_bouts = int(n_frames / (_MIN_BOUT * fps)) + 2
    uniforms = rng.random(max_bouts)
    states = np.empty(max_bouts, dtype=np.int64)
    state = int(rng.choice(len(BEHAVIOURS), p=entry / entry.sum()))
    for i in range(max_bouts):
        states[i] = state
        state = min(int(np.searchsorted(cum[state], uniforms[i], side="right")), len(cum) - 1)
    durations = rng.gamma(_GAMMA_SHAPE, MEAN_DURATION[states] / _GAMMA_SHAPE)
    frames = np.maximum(1, np.round(np.clip(durations, _MIN_BOUT, _MAX_BOUT) * fps)).astype(int)
    ends = np.cumsum(frames)
    b = int(np.searchsorted(ends, n_frames)) + 1
    frames = frames[:b].copy()
    frames[-1] -= int(ends[b - 1] - n_frames)
    return states[:b], frames


def usage_of(labels: np.ndarray, frames: np.ndarray, k: int) -> np.ndarray:
    """(k,) fraction of frames in each label."""
    out = np.bincount(labels, weights=frames, minlength=k).astype(np.float64)
    return out / out.sum()


def compare_usage(usage: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> dict:
    """What the page runs on per-animal usage (N, K): tested syllables, p, q, flagged, Cliff's
    delta (last cohort vs first), and the fingerprint's accuracy and p-value."""
    pooled = usage.mean(axis=0)
    tested = np.flatnonzero(pooled >= MIN_USAGE)
    p = np.array([stats.group_test(usage[:, i], groups).p_value for i in tested])
    q = stats.benjamini_hochberg(p)
    last = int(groups.max())
    delta = np.array(
        [stats.cliffs_delta(usage[groups == 0, i], usage[groups == last, i]) for i in tested]
    )
    fp = stats.fingerprint(np.sqrt(usage[:, tested]), groups, rng=rng)
    return {
        "tested": tested,
        "p": p,
        "q": q,
        "flagged": tested[q <= ALPHA],
        "delta": delta,
        "fingerprint_accuracy": fp.accuracy,
        "fingerprint_p": fp.p_value,
        "fingerprint_chance": fp.chance,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--animals", type=int, default=5, help="animals per cohort")
    parser.add_argument("--cohorts", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=600.0, help="recording per animal")
    parser.add_argument("--animal-sd", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    k = len(BEHAVIOURS)
    groups = np.repeat(np.arange(args.cohorts), args.animals)
    tests = flagged = any_flag = fp_hits = 0
    p_all: list[float] = []
    started = time.perf_counter()
    for _ in range(args.draws):
        usage = np.array(
            [
                usage_of(*simulate_bouts(rng, animal_weights(rng, None, args.animal_sd),
                                         args.seconds), k)
                for _ in groups
            ]
        )  # fmt: skip
        result = compare_usage(usage, groups, rng)
        tests += len(result["tested"])
        flagged += len(result["flagged"])
        any_flag += len(result["flagged"]) > 0
        fp_hits += result["fingerprint_p"] <= ALPHA
        p_all.extend(result["p"].tolist())
    wall = time.perf_counter() - started
    rate = flagged / max(tests, 1)
    # Binomial standard error of the per-test rate (tests within a draw are not independent,
    # so read it as a rough guide).
    se = math.sqrt(max(rate * (1 - rate), 1e-12) / max(tests, 1))
    sizes = " + ".join([str(args.animals)] * args.cohorts)
    test = "Mann–Whitney U" if args.cohorts == 2 else "Kruskal–Wallis"
    print(
        f"null calibration: {args.draws} draws of {sizes} animals, {args.seconds:.0f} s each, "
        f"animal SD {args.animal_sd}, {test}, BH at FDR {ALPHA}"
    )
    print(f"  syllable tests                 {tests}")
    print(f"  false-positive rate per test   {rate:.4f} (± {se:.4f})")
    print(f"  ratio to nominal {ALPHA:.0%}            {rate / ALPHA:.3f}")
    print(f"  draws with any syllable flagged {any_flag / args.draws:.4f}")
    print(f"  fingerprint p <= {ALPHA}         {fp_hits / args.draws:.4f}")
    print(f"  uncorrected p <= {ALPHA} per test   {np.mean(np.array(p_all) <= ALPHA):.4f}")
    print(f"  mean syllable p-value          {np.mean(p_all):.3f} (uniform: 0.5)")
    print(f"  wall time                      {wall:.1f} s")


if __name__ == "__main__":
    main()
