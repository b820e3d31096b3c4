"""Segmentation metrics against ground truth, and summaries of a labelling on its own.

Every function takes per-frame integer labels as a (T,) array or as a list of such arrays (one
per session); lists are concatenated for the agreement scores and kept apart for bouts, so a
bout never spans two sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from model.ethogram import bouts_from_labels

Labels = np.ndarray | Sequence[np.ndarray]


def _sessions(labels: Labels) -> list[np.ndarray]:
    if isinstance(labels, np.ndarray) and labels.ndim == 1:
        return [labels]
    return [np.asarray(x).ravel() for x in labels]


def _flat(labels: Labels) -> np.ndarray:
    parts = _sessions(labels)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _pair(truth: Labels, pred: Labels) -> tuple[np.ndarray, np.ndarray]:
    t, p = _flat(truth), _flat(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth has {t.size} frames but the prediction has {p.size}.")
    return t, p


def ari(truth: Labels, pred: Labels) -> float:
    """Adjusted Rand index: 1 for identical partitions, about 0 for chance."""
    t, p = _pair(truth, pred)
    return float(adjusted_rand_score(t, p))


def nmi(truth: Labels, pred: Labels) -> float:
    """Normalised mutual information (arithmetic normalisation), in [0, 1]."""
    t, p = _pair(truth, pred)
    return float(normalized_mutual_info_score(t, p))


def hungarian_accuracy(truth: Labels, pred: Labels) -> tuple[float, dict[int, int]]:
    """Fraction of frames right after the best one-to-one matching of predicted to true labels.

    Returns ``(accuracy, mapping)`` with ``mapping[pred_label] = true_label`` for matched
    labels; predicted labels left unmatched (more states than behaviours) count as wrong.
    """
    t, p = _pair(truth, pred)
    if t.size == 0:
        return 0.0, {}
    t_ids, t_inv = np.unique(t, return_inverse=True)
    p_ids, p_inv = np.unique(p, return_inverse=True)
    confusion = np.zeros((len(p_ids), len(t_ids)), dtype=np.int64)
    np.add.at(confusion, (p_inv, t_inv), 1)
    rows, cols = linear_sum_assignment(-confusion)
    correct = int(confusion[rows, cols].sum())
    mapping = {int(p_ids[r]): int(t_ids[c]) for r, c in zip(rows, cols, strict=True)}
    return correct / t.size, mapping


def usage(labels: Labels) -> dict[int, float]:
    """Fraction of frames spent in each label."""
    flat = _flat(labels)
    ids, counts = np.unique(flat, return_counts=True)
    return {int(i): float(c) / flat.size for i, c in zip(ids, counts, strict=True)}


def states_used(labels: Labels, *, min_fraction: float = 0.005) -> int:
    """Labels that cover at least ``min_fraction`` of the frames (default 0.5%).

    A floor, because a state visited for three frames of an hour is not a syllable anyone
    will name; ``min_fraction=0`` counts every distinct label.
    """
    return sum(f >= min_fraction for f in usage(labels).values()) if _flat(labels).size else 0


def bout_durations(labels: Labels, fps: float) -> np.ndarray:
    """Duration in seconds of every bout, sessions kept apart."""
    out = [(e - s) / fps for session in _sessions(labels)
           for s, e, _ in bouts_from_labels(session)]  # fmt: skip
    return np.asarray(out, dtype=np.float64)


def median_bout_duration(labels: Labels, fps: float) -> float:
    """Median bout (syllable) duration in seconds; 0 for no frames."""
    d = bout_durations(labels, fps)
    return float(np.median(d)) if d.size else 0.0


def summary(truth: Labels | None, pred: Labels, fps: float) -> dict[str, float]:
    """The figures the benchmark prints for one method."""
    out: dict[str, float] = {
        "states_used": float(states_used(pred)),
        "median_bout_s": median_bout_duration(pred, fps),
    }
    if truth is not None:
        out["ari"] = ari(truth, pred)
        out["nmi"] = nmi(truth, pred)
        out["accuracy"] = hungarian_accuracy(truth, pred)[0]
    return out


def syllable_leak(
    truth_a: Labels, pred_a: Labels, truth_b: Labels, pred_b: Labels
) -> tuple[float, dict[int, float]]:
    """How differently two cohorts' frames of the same true behaviour are segmented.

    Per behaviour b: the total variation distance between P(syllable | b, cohort A) and
    P(syllable | b, cohort B), ``0.5 * sum_s |P_A(s|b) - P_B(s|b)|`` (0: the behaviour maps to
    the same syllables in the same proportions; 1: to disjoint syllables). Returns the average
    weighted by each behaviour's frames in both cohorts, and the distance per behaviour.
    Behaviours seen in only one cohort are left out (nothing to compare).
    """
    ta, pa = _pair(truth_a, pred_a)
    tb, pb = _pair(truth_b, pred_b)
    per: dict[int, float] = {}
    weights: dict[int, int] = {}
    for b in np.intersect1d(np.unique(ta), np.unique(tb)):
        sa, sb = pa[ta == b], pb[tb == b]
        ids = np.union1d(sa, sb)
        ca = np.array([np.count_nonzero(sa == s) for s in ids], dtype=np.float64) / sa.size
        cb = np.array([np.count_nonzero(sb == s) for s in ids], dtype=np.float64) / sb.size
        per[int(b)] = 0.5 * float(np.abs(ca - cb).sum())
        weights[int(b)] = sa.size + sb.size
    total = sum(weights.values())
    mean = sum(per[b] * weights[b] for b in per) / total if total else 0.0
    return mean, per


def feature_shift(
    truth_a: Labels, x_a: Sequence[np.ndarray], truth_b: Labels, x_b: Sequence[np.ndarray]
) -> np.ndarray:
    """(F,) how far each per-frame feature moves between two cohorts *within* a behaviour:
    per behaviour, the difference of the cohorts' means over the pooled within-behaviour
    standard deviation (a standardised mean difference), averaged over behaviours weighted by
    frames. 0 when a feature describes a behaviour the same way in both cohorts."""
    ta, tb = _flat(truth_a), _flat(truth_b)
    xa, xb = np.concatenate(list(x_a)), np.concatenate(list(x_b))
    if len(xa) != len(ta) or len(xb) != len(tb):
        raise ValueError("give one feature row per labelled frame")
    out = np.zeros(xa.shape[1])
    total = 0
    for b in np.intersect1d(np.unique(ta), np.unique(tb)):
        fa, fb = xa[ta == b], xb[tb == b]
        if len(fa) < 2 or len(fb) < 2:
            continue
        sd = np.sqrt(0.5 * (fa.var(0) + fb.var(0))) + 1e-9
        n = len(fa) + len(fb)
        out += n * np.abs(fa.mean(0) - fb.mean(0)) / sd
        total += n
    return out / max(total, 1)
