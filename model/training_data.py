"""What a fit trains on: each session's observations, made a block of frames at a time, cut
into one tensor of subsequences, so that the experiment's crops never exist as floats at once
(memory that grows with the video is the limit on hours of data)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from model.features import release_pages
from model.svae import SVAEConfig, observations

_BLOCK = 4096  # frames turned into observations at a time


def session_observations(
    frames: np.ndarray, kinematics: np.ndarray | None, config: SVAEConfig, polarity: str | None
) -> torch.Tensor:
    """One session's (T, P) observations, made block by block from float [0, 1] or uint8 crops
    (possibly memory-mapped), so a session's crops never exist whole as floats (every step is
    per frame: the result is the same as all at once)."""
    parts = []
    for i in range(0, len(frames), _BLOCK):
        block = np.asarray(frames[i : i + _BLOCK])
        if block.dtype == np.uint8:  # as Features.crops_float: float32, then / 255
            block = block.astype(np.float32)
            block /= np.float32(255.0)
        kin = None if kinematics is None else kinematics[i : i + _BLOCK]
        parts.append(observations(block, kin, config, polarity))
    release_pages(frames)
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def storage_dtype(frames: int, width: int, half_above_gib: float) -> torch.dtype:
    """The dtype the training tensor of ``frames`` x ``width`` observations is kept in:
    float32, or float16 once float32 would pass ``half_above_gib`` (hours of video: 8 h at
    32x32 pixels is 3.5 GB in float32). Pixels in [0, 1] and kinematics clipped to ±8 lose at
    most 2.4e-4 and 4e-3 in float16, far below the decoder's noise; minibatches are made
    float32 again before the networks see them."""
    if frames * width * 4 > half_above_gib * 1024**3:
        return torch.float16
    return torch.float32


def as_float(x: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A piece of the training tensor as the networks take it: float32 on ``device``."""
    return x.to(device=device, dtype=torch.float32)


def subsequences(
    lengths: list[int],
    seq_len: int,
    session: Callable[[int], torch.Tensor],
    half_above_gib: float = math.inf,
) -> torch.Tensor:
    """Every session's observations cut into non-overlapping (N, seq_len, P) pieces (short
    tails dropped), filled session by session into one tensor, in float16 once it would pass
    ``half_above_gib`` in float32 (:func:`storage_dtype`): ``session(i)`` makes session i's
    (T_i, P) observations, and only one session's exist besides the pieces."""
    counts = [n // seq_len for n in lengths]
    if not sum(counts):
        raise ValueError(f"need at least {seq_len} frames in one session to fit a model")
    data: torch.Tensor | None = None
    at = 0
    for i, n in enumerate(counts):
        if not n:
            continue
        x = session(i)
        if data is None:
            dtype = storage_dtype(sum(counts) * seq_len, x.shape[1], half_above_gib)
            data = x.new_empty(sum(counts), seq_len, x.shape[1], dtype=dtype)
        data[at : at + n] = x[: n * seq_len].reshape(n, seq_len, -1)
        at += n
    assert data is not None
    return data
