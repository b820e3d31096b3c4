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
from model.priors import SLDSExpectations
from model.svae import frames_to_tensor, mean_field

DEFAULT_CORE = 384
DEFAULT_MARGIN = 64
DEFAULT_SWEEPS = 8
DEFAULT_TOL = 1e-3
_ENCODE_BLOCK = 4096


@dataclass
class Segmentation:
    """Per-frame syllables of one session and their summaries.

    syllable: (T,) int64 syllable id per frame (argmax of q(z_t)).
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


def bouts_from_labels(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal labels as (start, end_exclusive, label)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


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
) -> Tensor:
    """q(z) marginals (T, K) of one long sequence from potentials R, r (T, D) float64."""
    n = r.shape[0]
    length, layout = window_layout(n, core, margin)
    idx = torch.stack([torch.arange(s, s + length, device=r.device) for s, _, _ in layout])
    gamma_w, _, _ = mean_field(R[idx], r[idx], ex, max_sweeps=max_sweeps, tol=tol)
    out = torch.empty(n, gamma_w.shape[-1], dtype=gamma_w.dtype, device=gamma_w.device)
    for b, (start, k0, k1) in enumerate(layout):
        out[k0:k1] = gamma_w[b, k0 - start : k1 - start]
    return out


def encode(model: FittedModel, frames: np.ndarray) -> tuple[Tensor, Tensor]:
    """Recognition potentials (R, r), each (T, D) float64, for frames (T, H, W)."""
    x = frames_to_tensor(frames, model.config)
    Rs, rs = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], _ENCODE_BLOCK):
            R, r = model.svae.recognize(x[i : i + _ENCODE_BLOCK].to(model.device))
            Rs.append(R)
            rs.append(r)
    return torch.cat(Rs), torch.cat(rs)


def summarize(gamma: np.ndarray, keep_posterior: bool = True) -> Segmentation:
    """Labels, probabilities, bouts, transitions and usage from marginals gamma (T, K)."""
    K = gamma.shape[1]
    labels = gamma.argmax(1).astype(np.int64)
    prob = gamma[np.arange(len(labels)), labels].astype(np.float32)
    bouts = bouts_from_labels(labels)
    trans = np.zeros((K, K), dtype=np.int64)
    seq = np.array([b[2] for b in bouts], dtype=np.int64)
    if seq.size > 1:
        np.add.at(trans, (seq[:-1], seq[1:]), 1)
    usage = np.bincount(labels, minlength=K).astype(np.float64) / max(len(labels), 1)
    post = gamma.astype(np.float16) if keep_posterior else None
    return Segmentation(labels, prob, post, bouts, trans, usage)


def segment_frames(
    model: FittedModel,
    frames: np.ndarray,
    *,
    progress: Callable[[float, str], None] | None = None,
    keep_posterior: bool = True,
    core: int = DEFAULT_CORE,
    margin: int = DEFAULT_MARGIN,
    max_sweeps: int = DEFAULT_SWEEPS,
) -> Segmentation:
    """Syllables of one session's preprocessed frames (T, H, W), float32 in [0, 1]."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W) with T > 0, got {frames.shape}")
    if progress:
        progress(0.0, "encoding frames")
    model.svae.eval()
    R, r = encode(model, frames)
    if progress:
        progress(0.3, "inferring syllables")
    with torch.no_grad():
        ex = model.svae.expectations()
        gamma = infer_chunked(R, r, ex, core=core, margin=margin, max_sweeps=max_sweeps)
    seg = summarize(gamma.cpu().numpy(), keep_posterior)
    if progress:
        progress(1.0, "done")
    return seg
