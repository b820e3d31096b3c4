"""Power of the cohort comparison on a planted effect with known ground truth.

    python bench/power.py [--draws 100] [--animals 5] [--seconds 600] [--animal-sd 0.2]
                          [--noise 0.1] [--seed 2026]

A "drug" cohort's behaviour generator (:func:`model.synth.transition_matrix` with
``behaviour_weights``) enters two behaviours more often and one less (``PLANTED``); controls use
the plain generator. Animals differ among themselves as in ``bench/calibration.py``. Per-animal
behaviour is simulated from the generator's semi-Markov chain without rendering video (as in the
calibration), then turned into *syllables* by a stand-in for an imperfect segmentation: each
behaviour is split into two syllables (a coin per bout), and a share ``--noise`` of bouts is
given a random syllable. Syllables are mapped back to behaviours by the majority of their frames.

The comparison then runs exactly the statistics of the page (per-syllable Mann–Whitney U with
exact permutation p-values, Benjamini–Hochberg at FDR 0.05, the leave-one-animal-out
fingerprint). Printed: how often the flagged syllables map to exactly the planted behaviours
with the right directions, the hit rate for each planted behaviour, the rate of flags on
behaviours that were not planted (they do shift a little: usage is a fraction of time, so more
grooming leaves less time for the rest; the expected shifts are printed), and how often the
fingerprint beats chance (accuracy above the largest cohort's share and p <= 0.05).

It does not run the SVAE: the end-to-end path (video -> preprocessing -> fit -> segmentation ->
database -> comparison) is exercised by the tests, and this benchmark isolates the statistics'
power from the segmentation's accuracy (measured by ``bench/segmentation.py``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from calibration import ALPHA, MEAN_DURATION, animal_weights, compare_usage, simulate_bouts

from model.synth import BEHAVIOURS, transition_matrix

# Chosen so the planted behaviours change by 40% or more while every other behaviour's share
# of time moves by under 5% (see the expected shifts printed).
PLANTED = {"groom": 1.75, "sniff": 1.75, "pause": 0.3}
SPLITS = 2  # syllables per behaviour in the stand-in segmentation


def expected_usage(weights: dict[str, float] | None) -> np.ndarray:
    """(K,) long-run share of time per behaviour: the jump chain's stationary distribution
    weighted by the mean bout length."""
    trans = transition_matrix(weights)
    values, vectors = np.linalg.eig(trans.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    pi = pi / pi.sum()
    usage = pi * MEAN_DURATION
    return usage / usage.sum()


def to_syllables(rng: np.random.Generator, behaviour: np.ndarray, noise: float) -> np.ndarray:
    """Bouts' syllables from their behaviours: ``behaviour * SPLITS + coin``, and a random
    syllable for a share ``noise`` of bouts."""
    syllable = behaviour * SPLITS + rng.integers(0, SPLITS, len(behaviour))
    wrong = rng.random(len(behaviour)) < noise
    syllable[wrong] = rng.integers(0, len(BEHAVIOURS) * SPLITS, int(wrong.sum()))
    return syllable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--animals", type=int, default=5, help="animals per cohort")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--animal-sd", type=float, default=0.2)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    k = len(BEHAVIOURS)
    n_syl = k * SPLITS
    groups = np.repeat([0, 1], args.animals)
    planted_idx = {BEHAVIOURS.index(b): ("up" if w > 1 else "down") for b, w in PLANTED.items()}
    control, drug = expected_usage(None), expected_usage(PLANTED)
    print(f"planted: {PLANTED} ({args.animals} + {args.animals} animals, {args.seconds:.0f} s "
          f"each, animal SD {args.animal_sd}, {args.noise:.0%} of bouts mislabelled, "
          f"{SPLITS} syllables per behaviour)")  # fmt: skip
    print("expected share of time, control -> drug:")
    for i, b in enumerate(BEHAVIOURS):
        mark = " (planted)" if i in planted_idx else ""
        print(
            f"  {b:<11} {control[i]:.3f} -> {drug[i]:.3f} ({drug[i] / control[i] - 1:+.0%}){mark}"
        )

    exact = 0
    hits = dict.fromkeys(planted_idx, 0)
    other_flags = 0
    fp_beats = 0
    fp_acc: list[float] = []
    started = time.perf_counter()
    for _ in range(args.draws):
        usage = np.zeros((len(groups), n_syl))
        overlap = np.zeros((n_syl, k))  # frames of each syllable in each behaviour
        for a, g in enumerate(groups):
            w = animal_weights(rng, PLANTED if g == 1 else None, args.animal_sd)
            behaviour, frames = simulate_bouts(rng, w, args.seconds)
            syllable = to_syllables(rng, behaviour, args.noise)
            usage[a] = np.bincount(syllable, weights=frames, minlength=n_syl) / frames.sum()
            np.add.at(overlap, (syllable, behaviour), frames)
        mapping = overlap.argmax(axis=1)
        result = compare_usage(usage, groups, rng)
        flagged: dict[int, set[str]] = {}
        for s, q, d in zip(result["tested"], result["q"], result["delta"], strict=True):
            if q <= ALPHA:
                flagged.setdefault(int(mapping[s]), set()).add("up" if d > 0 else "down")
        ok = set(flagged) == set(planted_idx) and all(
            flagged[b] == {planted_idx[b]} for b in planted_idx
        )
        exact += ok
        for b, direction in planted_idx.items():
            hits[b] += direction in flagged.get(b, set())
        other_flags += len(set(flagged) - set(planted_idx))
        fp_acc.append(result["fingerprint_accuracy"])
        fp_beats += (
            result["fingerprint_p"] <= ALPHA
            and result["fingerprint_accuracy"] > result["fingerprint_chance"]
        )
    wall = time.perf_counter() - started
    print(f"over {args.draws} draws:")
    print(f"  flagged syllables map to exactly the planted behaviours (right directions): "
          f"{exact / args.draws:.2f}")  # fmt: skip
    for b, direction in planted_idx.items():
        print(f"  {BEHAVIOURS[b]:<11} flagged {direction:<4} {hits[b] / args.draws:.2f}")
    print(f"  other behaviours flagged per draw {other_flags / args.draws:.2f} "
          f"(of {k - len(planted_idx)})")  # fmt: skip
    chance = 0.5
    print(f"  fingerprint accuracy {np.mean(fp_acc):.2f} (chance {chance:.2f}, ratio "
          f"{np.mean(fp_acc) / chance:.2f}); beats chance at p <= {ALPHA}: "
          f"{fp_beats / args.draws:.2f}")  # fmt: skip
    print(f"  wall time {wall:.1f} s")


if __name__ == "__main__":
    main()
