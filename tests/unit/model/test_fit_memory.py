"""What a fit holds in memory does not change what it computes: uint8 crops made into floats a
block at a time, sessions cut straight into one tensor, stage B's moments summed chunk by chunk."""

from __future__ import annotations

from pathlib import Path

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


def test_hours_of_video_are_kept_in_half_precision() -> None:
    assert training_data.storage_dtype(10_000, 1030, 1.0) == torch.float32
    # 8 h at 30 fps, 32x32 pixels and 6 kinematics: 3.6 GB in float32.
    assert training_data.storage_dtype(864_000, 1030, 1.0) == torch.float16
    x = torch.tensor([[0.0, 1 / 255, 0.5, 1.0, -8.0, 8.0, 3.14159]])
    assert training_data.subsequences([1], 1, lambda i: x).dtype == torch.float32
    data = training_data.subsequences([1], 1, lambda i: x, half_above_gib=0.0)
    assert data.dtype == torch.float16
    back = training_data.as_float(data)
    assert back.dtype == torch.float32
    assert torch.allclose(back[0, :, :4], x[:, :4], atol=2.5e-4)  # pixels
    assert torch.allclose(back[0, :, 4:], x[:, 4:], atol=4e-3)  # kinematics


def test_a_fit_on_half_precision_storage_finds_the_same_syllables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same fit with its training tensor in float16 (as on hours of video) and in float32:
    the same syllables, frame for frame but for a few."""
    from sklearn.metrics import adjusted_rand_score

    from model.segment import segment_frames
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    torch.set_num_threads(1)
    syn = make_synthetic(1600, states=3, latent_dim=2, seed=1)
    kept = []
    made = training_data.subsequences

    def spy(*args, **kwargs):
        data = made(*args, **kwargs)
        kept.append(data.dtype)
        return data

    monkeypatch.setattr("model.train.subsequences", spy)
    labels = {}
    for half in (1.0, 0.0):
        settings = TrainSettings(hidden=64, steps_a=150, steps_c=60, batch=16, min_states=2,
                                 half_above_gib=half)  # fmt: skip
        fitted = fit_model([syn.frames], states=6, latent_dim=3, seed=0, settings=settings)
        labels[half] = segment_frames(fitted, syn.frames).syllable
    assert kept == [torch.float32, torch.float16]
    assert adjusted_rand_score(labels[1.0], labels[0.0]) > 0.95
    assert adjusted_rand_score(syn.states, labels[0.0]) > 0.5


def test_stage_b_in_pieces_is_stage_b_at_once(
    monkeypatch: pytest.MonkeyPatch, float64: None
) -> None:
    """Stage B's per-frame work (log-likelihoods, moments, forward-backward) done a few frames
    and subsequences at a time gives the states of all at once (hours of video need it)."""
    from model import stage_b

    rng = np.random.default_rng(3)
    z = np.repeat(rng.integers(0, 3, size=40 * 64 // 16), 16)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    X = torch.as_tensor(centres[z] + 0.4 * rng.standard_normal((z.size, 3))).reshape(40, 64, 3)
    extra = torch.as_tensor(rng.standard_normal((40, 64, 2)))

    def run() -> tuple[torch.Tensor, ...]:
        return stage_b.fit_sticky_ghmm(X, 10, start_states=8, seed=0, min_states=2, extra=extra)

    whole = run()
    monkeypatch.setattr(stage_b, "_ROWS", 100)  # pieces that do not divide the frames
    monkeypatch.setattr(stage_b, "_SEQS", 7)
    pieces = run()
    assert torch.equal(whole[2], pieces[2]) and int(whole[2].sum()) >= 3
    assert torch.allclose(whole[0], pieces[0], atol=1e-8)
    assert torch.allclose(whole[1], pieces[1], rtol=1e-8)


def _rss_file_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


def test_a_sessions_crops_leave_the_fits_memory_once_read(tmp_path: Path) -> None:
    """Memory-mapped crops read into a fit's observations are unmapped afterwards: hours of
    sessions' pages must not add up in the worker's resident memory. They read back the same."""
    crops = np.random.default_rng(0).integers(0, 256, size=(4096, 128, 128), dtype=np.uint8)
    crops.tofile(tmp_path / "crops.u8")  # 64 MiB
    mapped = np.memmap(tmp_path / "crops.u8", dtype=np.uint8, mode="r", shape=crops.shape)
    before = _rss_file_mib()
    cfg = SVAEConfig(states=2, latent_dim=2, height=8, width=8, hidden=8)
    obs = training_data.session_observations(mapped, None, cfg, None)
    assert obs.shape == (4096, 64)
    assert _rss_file_mib() - before < 16  # 64 MiB were read
    mapped.sum()  # touching them again maps them again ...
    assert _rss_file_mib() - before > 48
    assert np.array_equal(mapped[::512], crops[::512])  # ... with the same values


def test_training_steps_grow_with_the_experiment_within_a_budget() -> None:
    """Steps per stage: 400 on minutes of video, 30 passes from about 15 minutes, at most 4,000
    (8 h in well under an hour on 2 cores), and never fewer than 4 passes."""
    from model.train import TrainSettings, default_steps

    settings = TrainSettings()

    def per_epoch(minutes: float) -> int:  # 30 fps, 64-frame subsequences, 32 per minibatch
        return int(np.ceil(minutes * 60 * 30 / 64 / 32))

    assert default_steps(per_epoch(10), settings) == 400
    assert default_steps(per_epoch(60), settings) == 30 * per_epoch(60)
    assert default_steps(per_epoch(480), settings) == 4000
    assert default_steps(per_epoch(24 * 60), settings) == 4 * per_epoch(24 * 60)
    assert default_steps(1, settings) == 60  # a few subsequences: at most 60 passes
