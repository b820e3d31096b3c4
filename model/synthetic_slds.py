"""Small synthetic switching-LDS videos with known states, for tests and quick experiments.

A K-state SLDS in a low-dimensional latent space (each state its own rotation, contraction and
fixed point), with sticky Markov switching, rendered to frames through a fixed random MLP and
pixel noise (svae.md §5, anchor 1). This is not the mouse renderer of ``model/synth.py``: it
checks that the engine recovers the discrete states of data that really is an SLDS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticSLDS:
    """frames (T, H, W) float32 in [0, 1]; states (T,) int; latents (T, D) float64."""

    frames: np.ndarray
    states: np.ndarray
    latents: np.ndarray


def _dynamics(K: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-state F (K, D, D) and fixed points c (K, D), distinct rotation speeds and centres."""
    F = np.zeros((K, D, D))
    centres = np.zeros((K, D))
    for k in range(K):
        # A random orthonormal frame, a rotation in its first plane and contraction elsewhere.
        basis, _ = np.linalg.qr(rng.normal(size=(D, D)))
        angle = (k + 1) * math.pi / (K + 2) * rng.choice([-1, 1])
        block = np.eye(D) * 0.9
        block[:2, :2] = 0.97 * np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        F[k] = basis @ block @ basis.T
        direction = rng.normal(size=D)
        centres[k] = 1.5 * direction / np.linalg.norm(direction)
    return F, centres


def sample_slds(
    n_frames: int,
    *,
    states: int = 3,
    latent_dim: int = 2,
    mean_dwell: float = 20.0,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample (states (T,), latents (T, D)) from a sticky K-state SLDS."""
    rng = np.random.default_rng(seed)
    F, centres = _dynamics(states, latent_dim, rng)
    stay = 1.0 - 1.0 / mean_dwell
    z = np.zeros(n_frames, dtype=np.int64)
    x = np.zeros((n_frames, latent_dim))
    z[0] = rng.integers(states)
    x[0] = centres[z[0]] + rng.normal(size=latent_dim) * 0.5
    for t in range(1, n_frames):
        if rng.random() < stay:
            z[t] = z[t - 1]
        else:
            z[t] = (z[t - 1] + rng.integers(1, states)) % states
        k = z[t]
        x[t] = centres[k] + F[k] @ (x[t - 1] - centres[k]) + noise * rng.normal(size=latent_dim)
    return z, x


def render(
    latents: np.ndarray, *, height: int = 16, width: int = 16, pixel_noise: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """Map latents (T, D) through a fixed random 2-layer MLP to frames (T, H, W) in [0, 1]."""
    rng = np.random.default_rng(seed + 1000)
    D = latents.shape[1]
    hidden = 64
    W1 = rng.normal(size=(D, hidden)) * 1.2
    b1 = rng.normal(size=hidden) * 0.5
    W2 = rng.normal(size=(hidden, height * width)) * 3.0 / math.sqrt(hidden)
    b2 = rng.normal(size=height * width) * 0.5
    mean = 1.0 / (1.0 + np.exp(-(np.tanh(latents @ W1 + b1) @ W2 + b2)))
    frames = mean + pixel_noise * rng.normal(size=mean.shape)
    return np.clip(frames, 0.0, 1.0).reshape(-1, height, width).astype(np.float32)


def make_synthetic(
    n_frames: int,
    *,
    states: int = 3,
    latent_dim: int = 2,
    height: int = 16,
    width: int = 16,
    mean_dwell: float = 20.0,
    seed: int = 0,
) -> SyntheticSLDS:
    """A rendered SLDS video with its ground-truth states."""
    z, x = sample_slds(
        n_frames, states=states, latent_dim=latent_dim, mean_dwell=mean_dwell, seed=seed
    )
    frames = render(x, height=height, width=width, seed=seed)
    return SyntheticSLDS(frames, z, x)
