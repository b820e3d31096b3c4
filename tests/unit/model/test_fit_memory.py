"""What a fit holds in memory does not change what it computes: uint8 crops made into floats a
block at a time, sessions cut straight into one tensor, stage B's moments summed chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import training_data
from model.stage_b import moment_stats, smoothed_latents
from model.svae import SLDSSVAE, SVAEConfig, observations, transition_moments


def _config() -> SVAEConfig:
    return SVAEConfig(states=3, latent_dim=2, height=6, width=5, hidden=8, kinematics=2,
                      kin_mean=[0.0, 0.0], kin_std=[1.0, 1.0])  # fmt: skip


def test_uint8_crops_in_blocks_are_the_floats_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(23, 12, 10), dtype=np.uint8)
    kin = rng.standard_normal((23, 2))
    monkeypatch.setattr(training_data, "_BLOCK", 5)  # several blocks and a short last one
    blocks = training_data.session_observations(crops, kin, _config(), None)
    whole = observations(crops.astype(np.float32) / np.float32(255.0), kin, _config())
    assert blocks.shape == (23, 30 + 2)
    assert torch.equal(blocks, whole)


def test_sessions_are_cut_into_subsequences_in_order() -> None:
    made = []

    def session(i: int) -> torch.Tensor:
        made.append(i)
        return torch.arange(lengths[i] * 2, dtype=torch.float32).reshape(-1, 2) + 1000 * i

    lengths = [10, 3, 9]
    data = training_data.subsequences(lengths, 4, session)
    assert made == [0, 2]  # a session shorter than a subsequence is never made
    assert data.shape == (2 + 2, 4, 2)
    assert torch.equal(data[1], session(0)[4:8]) and torch.equal(data[3], session(2)[4:8])
    with pytest.raises(ValueError, match="at least 4 frames"):
        training_data.subsequences([3, 2], 4, session)


def test_moments_summed_by_chunk_equal_the_whole(float64: None) -> None:
    torch.manual_seed(0)
    model = SLDSSVAE(SVAEConfig(states=1, latent_dim=2, height=6, width=5, hidden=8))
    data = torch.rand(7, 9, model.config.pixels, dtype=torch.float32)
    gamma = torch.softmax(torch.randn(7, 9, 4), -1)
    chunked = moment_stats(model, data, gamma, chunk=2)
    # By hand, from all moments at once.
    with torch.no_grad():
        from model.svae import local_posterior

        R, r = model.recognize(data)
        mom = transition_moments(local_posterior(R, r, model.expectations(), max_sweeps=1).kalman)
    wk = gamma[:, 1:].reshape(-1, 4).T

    def weigh(m: torch.Tensor) -> torch.Tensor:
        return (wk @ m.reshape(wk.shape[1], -1)).reshape(4, *m.shape[-2:])

    assert torch.allclose(chunked.Sxx, weigh(mom.Eprev), atol=1e-10)
    assert torch.allclose(chunked.Sxy, weigh(mom.Ecross).transpose(-1, -2), atol=1e-10)
    assert torch.allclose(chunked.Syy, weigh(mom.Enext), atol=1e-10)
    assert torch.allclose(chunked.n, gamma[:, 1:].sum((0, 1)))
    assert torch.allclose(smoothed_latents(model, data, chunk=3), smoothed_latents(model, data))
