"""Saving and loading a fitted model: round trip, frozen ids, deterministic segmentation."""

import json

import numpy as np
import pytest
import torch

from model.artifact import ArtifactError, FittedModel
from model.priors import MNIWStats, SLDSStats, svi_step
from model.segment import segment_frames
from model.svae import SLDSSVAE, SVAEConfig


def _model(seed: int = 0) -> FittedModel:
    torch.manual_seed(seed)
    cfg = SVAEConfig(states=4, latent_dim=3, height=12, width=10, hidden=32)
    svae = SLDSSVAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    K, D = 4, 3
    X = torch.randn(K, 50, D + 1, generator=gen, dtype=torch.float64)
    X[..., D] = 1
    Y = torch.randn(K, 50, D, generator=gen, dtype=torch.float64)
    dyn = MNIWStats(X.transpose(1, 2) @ X, X.transpose(1, 2) @ Y, Y.transpose(1, 2) @ Y,
                    torch.full((K,), 50.0, dtype=torch.float64))
    x1 = torch.randn(5, D, generator=gen, dtype=torch.float64)
    ini = MNIWStats(torch.full((1, 1), 5.0, dtype=torch.float64), x1.sum(0)[None], x1.T @ x1,
                    torch.tensor(5.0, dtype=torch.float64))
    st = SLDSStats(torch.rand(K, generator=gen, dtype=torch.float64),
                   torch.rand(K, K, generator=gen, dtype=torch.float64) * 30, dyn, ini)
    svae.params = svi_step(svae.prior, svae.prior, st, rho=1.0, scale=1.0)
    return FittedModel(cfg, svae, {"states_used": 4, "note": "test"})


def _frames(n: int = 700) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.random((12, 10)).astype(np.float32)
    t = np.arange(n)[:, None, None]
    return np.clip(base + 0.3 * np.sin(t / 9.0 + base * 6), 0, 1).astype(np.float32)


def test_save_load_round_trip_gives_identical_segmentation(tmp_path):
    model = _model()
    frames = _frames()
    before = segment_frames(model, frames)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["config"]["states"] == 4
    assert meta["summary"]["note"] == "test"
    loaded = FittedModel.load(tmp_path / "m", device="cpu")
    for a, b in zip(model.svae.state_dict().values(), loaded.svae.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert torch.equal(model.svae.params.trans, loaded.svae.params.trans)
    assert torch.equal(model.svae.params.dynamics.S_plus, loaded.svae.params.dynamics.S_plus)
    first = segment_frames(loaded, frames)
    second = segment_frames(loaded, frames)
    assert np.array_equal(first.syllable, second.syllable)
    assert np.array_equal(first.probability, second.probability)
    assert np.array_equal(first.syllable, before.syllable)
    assert first.transition_counts.shape == (4, 4) and first.usage.shape == (4,)
    assert sum(e - s for s, e, _ in first.bouts) == len(frames)


def test_frames_of_another_size_are_resized(tmp_path):
    model = _model()
    frames = _frames(300)
    big = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)  # (T, 24, 20)
    seg = segment_frames(model, big)
    assert seg.syllable.shape == (300,)


def test_load_rejects_unknown_versions_and_missing_files(tmp_path):
    with pytest.raises(ArtifactError):
        FittedModel.load(tmp_path / "nothing")
    path = _model().save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    meta["format_version"] = 99
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="version"):
        FittedModel.load(path)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_very_short_sessions_segment(n):
    model = _model()
    calls = []
    seg = segment_frames(model, _frames(n), progress=lambda f, m, d: calls.append(f))
    assert seg.syllable.shape == (n,)
    assert calls[-1] == 1.0
    with pytest.raises(ValueError):
        segment_frames(model, np.zeros((0, 12, 10), dtype=np.float32))
