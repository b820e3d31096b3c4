"""Per-frame kinematics beside the crops: scale-free features, and models that require them."""

import numpy as np
import pytest
import torch

from model.artifact import FittedModel
from model.kinematics import KINEMATIC_NAMES, from_scalars, standardizer
from model.segment import segment_frames
from model.svae import SLDSSVAE, SVAEConfig


def _scalars(scale: float = 1.0, n: int = 200) -> dict[str, np.ndarray]:
    t = np.arange(n) / 30.0
    return {
        "speed": scale * (40 + 30 * np.sin(t)),  # px/s
        "angular_velocity": 2.0 * np.cos(3 * t),  # rad/s, does not scale with zoom
        "body_length": scale * (50 + 5 * np.sin(2 * t)),
        "area": scale**2 * (900 + 60 * np.sin(2 * t)),
    }


def test_kinematics_do_not_depend_on_zoom():
    near, far = from_scalars(_scalars(2.0)), from_scalars(_scalars(1.0))
    assert near.shape == (200, len(KINEMATIC_NAMES)) and near.dtype == np.float32
    assert np.allclose(near, far, atol=1e-5)


def test_faster_mouse_has_larger_speed_feature():
    slow, fast = _scalars(), _scalars()
    fast["speed"] = fast["speed"] * 3
    assert (from_scalars(fast)[:, 0] > from_scalars(slow)[:, 0]).all()


def test_missing_scalars_are_named():
    scalars = _scalars()
    del scalars["area"]
    with pytest.raises(ValueError, match="area"):
        from_scalars(scalars)


def test_standardizer_mean_and_std():
    a = np.random.default_rng(0).normal(3.0, 2.0, size=(5000, 4))
    mean, std = standardizer([a[:2000], a[2000:]])
    assert np.allclose(mean, a.mean(0)) and np.allclose(std, a.std(0))


def _kin_model() -> FittedModel:
    torch.manual_seed(0)
    cfg = SVAEConfig(states=3, latent_dim=2, height=8, width=8, hidden=16, kinematics=4,
                     kin_mean=[0.0] * 4, kin_std=[1.0] * 4, kin_weight=16.0)
    return FittedModel(cfg, SLDSSVAE(cfg), {})


def test_model_fitted_with_kinematics_needs_them(tmp_path):
    model = _kin_model()
    frames = np.random.default_rng(1).random((100, 8, 8)).astype(np.float32)
    kin = from_scalars(_scalars(n=100))
    with pytest.raises(ValueError, match="kinematics"):
        segment_frames(model, frames)
    with pytest.raises(ValueError, match=r"\(100, 4\)"):
        segment_frames(model, frames, kin[:50])
    before = segment_frames(model, frames, kin)
    model.save(tmp_path / "m")
    loaded = FittedModel.load(tmp_path / "m", device="cpu")
    assert loaded.config.kinematics == 4 and loaded.config.kin_weight == 16.0
    after = segment_frames(loaded, frames, kin)
    assert np.array_equal(before.syllable, after.syllable)


def test_decoder_weighs_kinematics():
    """A kinematic error costs kin_weight times a pixel error of the same size."""
    model = _kin_model().svae
    dec = model.decoder
    x = torch.zeros(1, 2, dtype=torch.float32)
    mu = dec(x)
    base = dec.log_likelihood(x, mu)
    pix, kin = mu.clone(), mu.clone()
    pix[0, 0] += 0.1
    kin[0, 64] += 0.1
    lv = dec.log_var().detach()
    d_pix = float((base - dec.log_likelihood(x, pix)).detach()) / float(torch.exp(-lv[0]))
    d_kin = float((base - dec.log_likelihood(x, kin)).detach()) / float(torch.exp(-lv[64]))
    assert d_kin == pytest.approx(16.0 * d_pix, rel=1e-3)
