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


def _mouse_crops(sway: np.ndarray, side: int = 32) -> np.ndarray:
    """Crops of an ellipse body (nose to +x) whose head disc sits ``sway`` pixels off-axis."""
    import cv2

    out = np.zeros((len(sway), side, side), dtype=np.uint8)
    for i, s in enumerate(sway):
        cv2.ellipse(out[i], (14, 16), (9, 4), 0, 0, 360, 200, -1)
        cv2.circle(out[i], (24, round(float(16 + s))), 3, 200, -1)
    return out


def test_head_sway_follows_the_head_and_head_motion_its_movement():
    from model.kinematics import HEAD_NAMES, head_from_crops

    still = head_from_crops(_mouse_crops(np.zeros(60)), 30.0)
    left = head_from_crops(_mouse_crops(np.full(60, -4.0)), 30.0)
    right = head_from_crops(_mouse_crops(np.full(60, 4.0)), 30.0)
    assert still.shape == (60, len(HEAD_NAMES)) and still.dtype == np.float32
    # The drawn body lies half a pixel below the crop's middle row (15.5 of 0..31).
    assert still[:, 0].mean() == pytest.approx(0.5 / 32, abs=2e-3)
    assert left[:, 0].mean() < still[:, 0].mean() - 0.02  # rows grow downwards
    assert right[:, 0].mean() > still[:, 0].mean() + 0.02
    # A head sweeping from side to side at 1.5 Hz moves; a still one does not.
    t = np.arange(90) / 30.0
    sniff = head_from_crops(_mouse_crops(4.0 * np.sin(2 * np.pi * 1.5 * t)), 30.0)
    assert sniff[10:-10, 1].min() > still[:, 1].max() + 1.0
    # uint8 crops and their float copy in [0, 1] give the same numbers.
    crops = _mouse_crops(4.0 * np.sin(2 * np.pi * 1.5 * t))
    assert np.allclose(head_from_crops(crops.astype(np.float32) / 255.0, 30.0), sniff, atol=1e-5)
    assert head_from_crops(crops[:0], 30.0).shape == (0, 2)


def test_model_fitted_with_fewer_kinematics_takes_the_first_columns():
    """Models fitted before the head columns existed segment with today's kinematics."""
    model = _kin_model()
    frames = np.random.default_rng(1).random((100, 8, 8)).astype(np.float32)
    kin = from_scalars(_scalars(n=100))
    wider = np.concatenate([kin, np.random.default_rng(2).normal(size=(100, 2))], 1)
    a = segment_frames(model, frames, kin)
    b = segment_frames(model, frames, wider.astype(np.float32))
    assert np.array_equal(a.syllable, b.syllable)


def test_recipe_two_keeps_a_change_of_behaviour_sharp():
    """A mouse that starts running at frame 100: recipes 2 and 3 (new fits: the same smoothing)
    let the speed feature move at most 2 frames before the change, recipe 1 (older models) 4
    frames; both agree
    far from the change, and an unknown recipe says to upgrade."""
    from model.kinematics import KINEMATICS_RECIPE, RECIPES

    scalars = _scalars(n=200)
    scalars["speed"] = np.where(np.arange(200) < 100, 10.0, 200.0)
    new, old = from_scalars(scalars, recipe=2), from_scalars(scalars, recipe=1)
    assert KINEMATICS_RECIPE == 3 and set(RECIPES) == {1, 2, 3}

    def first_moved(kin: np.ndarray) -> int:
        return int(np.flatnonzero(kin[:, 0] > kin[0, 0] + 1e-3)[0])

    assert first_moved(new) == 98 and first_moved(old) == 96
    assert first_moved(from_scalars(scalars)) == 98  # recipe 3: recipe 2's smoothing
    assert np.allclose(new[:90, 0], old[:90, 0]) and np.allclose(new[110:, 0], old[110:, 0])
    with pytest.raises(ValueError, match=r"recipe 9.*upgrade"):
        from_scalars(scalars, recipe=9)


def test_head_motion_window_follows_the_recipe():
    """head_motion averages over 0.15 s (recipe 2) or 0.3 s (recipe 1): a head that starts to
    move at frame 30 raises the recipe-2 feature later than the recipe-1 one."""
    from model.kinematics import head_from_crops

    sway = np.where(np.arange(60) < 30, 0.0, 4.0 * np.sin(2 * np.pi * 3 * np.arange(60) / 30))
    crops = _mouse_crops(sway)
    new, old = head_from_crops(crops, 30.0), head_from_crops(crops, 30.0, recipe=1)

    def first_moved(kin: np.ndarray) -> int:
        return int(np.flatnonzero(kin[:, 1] > kin[0, 1] + 0.5)[0])

    assert 25 <= first_moved(old) < first_moved(new) <= 30


def test_models_record_how_their_kinematics_were_made(tmp_path):
    """New fits record the kinematics recipe and noise they were fitted with; a model saved
    before recipes existed (no field in its JSON) reads back as recipe 1."""
    import json

    from model.artifact import CONFIG_FILE
    from model.kinematics import KINEMATICS_RECIPE
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(200, states=2, latent_dim=2, seed=1)
    kin = from_scalars(_scalars(n=200))
    settings = TrainSettings(hidden=16, steps_a=3, steps_c=2, batch=4, min_states=2,
                             pretrain_passes=0.0, min_bout_s=0.0)
    fitted = fit_model([syn.frames], [kin], states=2, latent_dim=2, settings=settings)
    assert fitted.config.kin_recipe == KINEMATICS_RECIPE
    assert fitted.config.kin_noise == settings.kin_noise == 0.3
    _kin_model().save(tmp_path)
    config_file = tmp_path / CONFIG_FILE
    meta = json.loads(config_file.read_text())
    del meta["config"]["kin_recipe"]
    config_file.write_text(json.dumps(meta))
    assert FittedModel.load(tmp_path).config.kin_recipe == 1
