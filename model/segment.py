"""Segment a session's frames into syllables with a fitted model (svae.md §7.7).

The global parameters are fixed; only the local mean field runs. A long session is cut into
windows of ``core + 2·margin`` frames that overlap by ``2·margin``, all windows run as one batch
(batching is nearly free, the per-step Python loop is not), and each window contributes only its
central ``core`` frames. The Kalman and HMM posteriors forget within a few tens of frames, so the
stitched marginals match a full-length run away from the window edges (tested to 1e-3).

Everything here is deterministic: no sampling, fixed window layout, so the same model and frames
always give the same labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.artifact import FittedModel
from model.ethogram import bouts_from_labels
from model.features import Features, framing
from model.hmm import one_cpu_thread, viterbi
from model.priors import SLDSExpectations
from model.rate import at_rate
from model.svae import mean_field, observations

DEFAULT_CORE = 384
DEFAULT_MARGIN = 64
DEFAULT_SWEEPS = 6
DEFAULT_TOL = 1e-2  # max |Δq(z_t)| between sweeps; labels are settled well before 1e-3
DEFAULT_MIN_BOUT = 3
_ENCODE_BLOCK = 4096
# Windows per mean-field batch: 64 windows of 384 frames are 13.7 minutes at 30 fps, so a
# video up to that length runs as one batch, and a longer one in batches of bounded memory.
DEFAULT_MAX_WINDOWS = 64
# Sweeps stop once no label has changed for this many sweeps (on the tracktor clip the labels
# after 1 sweep equal those after 6; each sweep is ~0.3 s per 5 minutes of video on one core).
DEFAULT_SETTLE = 1


@dataclass
class Segmentation:
    """Per-frame syllables of one session and their summaries.

    syllable: (T,) int64 syllable id per frame (Viterbi path under the final q(x)).
    probability: (T,) float32 q(z_t = syllable_t).
    posterior: (T, K) float16 q(z_t), or None.
    bouts: [(start, end_exclusive, syllable)] maximal runs of one syllable.
    transition_counts: (K, K) int64 bout-to-bout transitions (row: from, column: to).
    usage: (K,) float64 fraction of frames in each syllable.
    """

    syllable: np.ndarray
    probability: np.ndarray
    posterior: np.ndarray | None
    bouts: list[tuple[int, int, int]]
    transition_counts: np.ndarray
    usage: np.ndarray

    def durations(self) -> np.ndarray:
        """(n_bouts,) bout lengths in frames."""
        return np.array([e - s for s, e, _ in self.bouts], dtype=np.int64)


def merge_short_bouts(labels: np.ndarray, gamma: np.ndarray, min_frames: int) -> np.ndarray:
    """Relabel bouts shorter than ``min_frames`` to a neighbouring bout's syllable.

    Each short bout (shortest first) takes the syllable of the previous or next bout, whichever
    has the larger summed marginal over the short bout's frames. Runs of a few frames at the
    switch between two movements are mostly the model hesitating, not behaviour (svae.md §7.4).
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    if min_frames <= 1 or labels.size == 0:
        return labels
    for _ in range(8):
        bouts = bouts_from_labels(labels)
        if len(bouts) < 2:
            break
        order = sorted(range(len(bouts)), key=lambda i: bouts[i][1] - bouts[i][0])
        changed = False
        for i in order:
            s, e, _ = bouts[i]
            if e - s >= min_frames:
                break
            # Re-read the neighbours' current labels: earlier merges in this pass may have
            # changed them.
            cands = []
            if s > 0:
                cands.append(int(labels[s - 1]))
            if e < labels.size:
                cands.append(int(labels[e]))
            best = max(cands, key=lambda k: float(gamma[s:e, k].sum()))
            if best != labels[s]:
                labels[s:e] = best
                changed = True
        if not changed:
            break
    return labels


def window_layout(n: int, core: int, margin: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Equal-length windows covering n frames.

    Returns (window_length, [(window_start, keep_start, keep_end)]), where frames
    [keep_start, keep_end) are taken from the window that starts at window_start.
    """
    length = core + 2 * margin
    if n <= length:
        return n, [(0, 0, n)]
    out = []
    n_win = -(-n // core)
    for i in range(n_win):
        keep0, keep1 = i * core, min((i + 1) * core, n)
        start = min(max(keep0 - margin, 0), n - length)
        out.append((start, keep0, keep1))
    return length, out


def infer_chunked(
    R: Tensor,
    r: Tensor,
    ex: SLDSExpectations,
    *,
    core: int = DEFAULT_CORE,
    margin: int = DEFAULT_MARGIN,
    max_sweeps: int = DEFAULT_SWEEPS,
    tol: float = DEFAULT_TOL,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    settle_sweeps: int = DEFAULT_SETTLE,
) -> tuple[Tensor, Tensor]:
    """Marginals and labels of one long sequence from potentials R, r (T, D) float64.

    Returns q(z) marginals (T, K) and the Viterbi path (T,) under the final node potentials:
    the most probable joint path, which does not flicker at transitions the way the per-frame
    argmax of the marginals can.

    Windows run in batches of at most ``max_windows``: the smoother's working memory is
    proportional to the batch (about 5 MB per window), so an hour of video no longer needs
    1.3 GB for it. Each batch stops sweeping when its own marginals have settled to ``tol``
    or none of its labels has changed for ``settle_sweeps`` sweeps (0: marginals only).
    """
    n = r.shape[0]
    length, layout = window_layout(n, core, margin)
    gamma: Tensor | None = None
    labels = torch.empty(n, dtype=torch.long, device=r.device)
    for g in range(0, len(layout), max(1, max_windows)):
        group = layout[g : g + max(1, max_windows)]
        idx = torch.stack([torch.arange(s, s + length, device=r.device) for s, _, _ in group])
        mf = mean_field(R[idx], r[idx], ex, max_sweeps=max_sweeps, tol=tol,
                        settle_sweeps=settle_sweeps)
        paths = viterbi(ex.log_pi0, ex.log_trans, mf.log_lik)
        if gamma is None:
            gamma = torch.empty(n, mf.gamma.shape[-1], dtype=mf.gamma.dtype, device=r.device)
        for b, (start, k0, k1) in enumerate(group):
            gamma[k0:k1] = mf.gamma[b, k0 - start : k1 - start]
            labels[k0:k1] = paths[b, k0 - start : k1 - start]
    assert gamma is not None
    return gamma, labels


def encode(
    model: FittedModel,
    frames: np.ndarray,
    kinematics: np.ndarray | None = None,
    polarity: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Recognition potentials (R, r), each (T, D) float64, for frames (T, H, W) and, for models
    fitted with them, the session's kinematics (T, F) and polarity ("dark" or "bright").

    Frames are float in [0, 1] or uint8 (scaled by 1/255, as ``Features.crops_float`` does).
    The observations are built block by block, so an hour of video never exists as a second
    and third float copy (every step is per frame: the result is the same as all at once).
    """
    n = len(frames)
    if kinematics is not None and model.config.kinematics and len(kinematics) != n:
        # Blocks would not notice surplus rows; same message as observations().
        raise ValueError(
            f"kinematics must be ({n}, {model.config.kinematics}) for these frames, "
            f"got {np.shape(kinematics)}"
        )
    Rs, rs = [], []
    with torch.no_grad():
        for i in range(0, n, _ENCODE_BLOCK):
            block = np.asarray(frames[i : i + _ENCODE_BLOCK])
            if block.dtype == np.uint8:
                # uint8 crops come from preprocessing, so this import costs nothing then; the
                # module stays free of OpenCV and PyAV for float callers.
                from model.preprocess import unit_float

                block = unit_float(block)
            kin = None if kinematics is None else kinematics[i : i + _ENCODE_BLOCK]
            x = observations(block, kin, model.config, polarity)
            R, r = model.svae.recognize(x.to(model.device))
            Rs.append(R)
            rs.append(r)
    return torch.cat(Rs), torch.cat(rs)


def summarize(
    gamma: np.ndarray, labels: np.ndarray | None = None, keep_posterior: bool = True
) -> Segmentation:
    """Probabilities, bouts, transitions and usage from marginals gamma (T, K) and labels (T,).

    Without labels, the per-frame argmax of gamma is used.
    """
    labels = gamma.argmax(1) if labels is None else np.asarray(labels)
    labels = labels.astype(np.int64)
    prob = gamma[np.arange(len(labels)), labels].astype(np.float32)
    post = gamma.astype(np.float16) if keep_posterior else None
    return from_labels(labels, prob, gamma.shape[1], post)


def from_labels(
    labels: np.ndarray, probability: np.ndarray, states: int, posterior: np.ndarray | None = None
) -> Segmentation:
    """Bouts, bout-to-bout transitions and usage of a syllable sequence, with each frame's
    probability (and posterior) as given."""
    labels = np.asarray(labels, dtype=np.int64)
    bouts = bouts_from_labels(labels)
    trans = np.zeros((states, states), dtype=np.int64)
    seq = np.array([b[2] for b in bouts], dtype=np.int64)
    if seq.size > 1:
        np.add.at(trans, (seq[:-1], seq[1:]), 1)
    usage = np.bincount(labels, minlength=states).astype(np.float64) / max(len(labels), 1)
    return Segmentation(labels, probability, posterior, bouts, trans, usage)


def segment_frames(
    model: FittedModel,
    frames: np.ndarray,
    kinematics: np.ndarray | None = None,
    *,
    polarity: str | None = None,
    progress: Callable[[float, str, dict], None] | None = None,
    keep_posterior: bool = True,
    core: int = DEFAULT_CORE,
    margin: int = DEFAULT_MARGIN,
    max_sweeps: int = DEFAULT_SWEEPS,
    min_bout: int = DEFAULT_MIN_BOUT,
) -> Segmentation:
    """Syllables of one session's preprocessed frames (T, H, W), float32 in [0, 1] (or the
    uint8 crops of :class:`model.features.Features`, which saves their float copy), and its
    kinematics (T, F) from :func:`model.kinematics.from_scalars` if the model uses them, and
    its polarity (``Features.polarity``) if the model was told polarities when fitted.

    Labels are the Viterbi path, with bouts shorter than ``min_bout`` frames merged into a
    neighbour. ``progress(fraction, message, metrics)`` is called as in ``fit_model``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W) with T > 0, got {frames.shape}")
    if progress:
        progress(0.0, "encoding frames", {})
    model.svae.eval()
    R, r = encode(model, frames, kinematics, polarity)
    if progress:
        progress(0.3, "inferring syllables", {})
    with torch.no_grad(), one_cpu_thread(R.device):
        ex = model.svae.expectations()
        gamma, labels = infer_chunked(R, r, ex, core=core, margin=margin,
                                      max_sweeps=max_sweeps)
    g = gamma.cpu().numpy()
    labels_np = merge_short_bouts(labels.cpu().numpy(), g, min_bout)
    seg = summarize(g, labels_np, keep_posterior)
    if progress:
        progress(1.0, "done", {"bouts": len(seg.bouts)})
    return seg


def segment_features(
    model: FittedModel,
    features: Features,
    *,
    progress: Callable[[float, str, dict], None] | None = None,
    keep_posterior: bool = True,
) -> Segmentation:
    """Syllables of a preprocessed session at its own frames, made the way the model was
    fitted: the session is shown to the model at the model's frame rate
    (:func:`model.rate.at_rate`), with kinematics made by the model's recipe and the session's
    polarity; the labels are then carried back to the session's frames, so a 15 fps session
    segmented by a 30 fps model keeps its frame count and its durations in seconds."""
    if framing(model.summary) != framing(features.summary):
        raise ValueError(
            f"this session's crops are framed by version {framing(features.summary)} of "
            f"Syllabary's preprocessing, the model's training sessions by version "
            f"{framing(model.summary)}: fit a new model to segment it"
        )
    shown, back = at_rate(features, model.config.fps)
    seg = segment_frames(
        model,
        shown.crops,  # uint8, memory-mapped: converted block by block, no float copy
        shown.kinematics(model.config.kin_recipe) if model.config.kinematics else None,
        polarity=shown.polarity,
        keep_posterior=keep_posterior,
        progress=progress,
    )
    if shown is features:
        return seg
    post = None if seg.posterior is None else seg.posterior[back]
    return from_labels(seg.syllable[back], seg.probability[back], len(seg.usage), post)
