"""Sessions filmed at another frame rate are shown to a model at its own rate, and their
syllables come back at the session's own frames."""

import numpy as np
import pytest

from model.features import Features
from model.rate import at_rate, model_rate, needs_resampling


def _features(n: int, fps: float) -> Features:
    t = np.arange(n) / fps
    crops = np.zeros((n, 8, 8), dtype=np.uint8)
    crops[:, 4, :] = (np.arange(n) * 2 % 256)[:, None]  # a value that grows frame by frame
    heading = np.angle(np.exp(1j * (3.0 + 2.0 * t)))  # turning, wraps past +pi
    return Features(
        crops=crops,
        scalars={"x": 10 * t, "heading": heading, "speed": np.full(n, 10.0)},
        quality=np.where(np.arange(n) % 7 == 0, 1, 0).astype(np.int8),
        times=t,
        fps=fps,
        summary={"fps": fps, "frames": n, "polarity": "dark"},
    )


def test_same_rate_is_left_alone():
    f = _features(30, 29.97)
    shown, back = at_rate(f, 30.0)
    assert shown is f and np.array_equal(back, np.arange(30))
    assert not needs_resampling(29.97, 30.0) and needs_resampling(25.0, 30.0)


def test_a_15_fps_session_is_shown_at_30_fps_and_carried_back():
    f = _features(45, 15.0)
    shown, back = at_rate(f, 30.0)
    assert shown.fps == 30.0 and shown.n_frames == 89  # 0 .. 44/15 s every 1/30 s
    assert np.allclose(np.diff(shown.times), 1 / 30)
    # Each of the session's own frames maps to the resampled frame at its time ...
    assert np.array_equal(back, 2 * np.arange(45))
    assert np.array_equal(shown.crops[back], f.crops)
    # ... and the frames in between are halfway in crops and scalars.
    assert shown.crops[1, 4, 0] == 1 and shown.crops[3, 4, 0] == 3
    assert np.allclose(shown.scalars["x"], 10 * shown.times)
    expected = np.angle(np.exp(1j * (3.0 + 2.0 * shown.times)))
    assert np.allclose(np.exp(1j * shown.scalars["heading"]), np.exp(1j * expected))
    assert np.array_equal(shown.quality[back], f.quality)
    assert shown.summary["fps"] == 30.0 and f.summary["fps"] == 15.0  # the input is unchanged


def test_a_60_fps_session_is_thinned_to_30():
    f = _features(120, 60.0)
    shown, back = at_rate(f, 30.0)
    assert shown.n_frames == 60 and np.array_equal(shown.crops, f.crops[::2])
    assert np.array_equal(back, np.clip(np.rint(np.arange(120) / 2), 0, 59))


@pytest.mark.parametrize(
    ("rates", "expected"),
    [([30.0, 30.0, 15.0], 30.0), ([15.0, 15.0, 30.0], 15.0), ([15.0, 30.0], 30.0),
     ([29.97, 30.0, 25.0], 29.985)],
)
def test_model_rate_is_the_most_common_rate(rates, expected):
    assert model_rate(rates) == pytest.approx(expected)


def test_segmenting_a_15_fps_session_keeps_its_frames(tmp_path):
    """A 30 fps model segments a 15 fps session: one syllable per frame of the session, bouts
    in the session's frames, the same syllables as the 30 fps recording at the same times."""
    from model.segment import segment_features
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(600, states=2, latent_dim=2, seed=1)
    frames = np.clip(syn.frames, 0, 1)
    settings = TrainSettings(hidden=16, steps_a=20, steps_c=5, batch=4, min_states=2,
                             pretrain_passes=0.0, min_bout_s=0.0)
    fitted = fit_model([frames], None, states=2, latent_dim=2, settings=settings, fps=30.0)
    u8 = np.rint(frames * 255).astype(np.uint8)
    n = len(u8)
    full = Features(crops=u8, scalars={}, quality=np.zeros(n, np.int8),
                    times=np.arange(n) / 30.0, fps=30.0, summary={"polarity": "dark"})
    half = Features(crops=u8[::2], scalars={}, quality=np.zeros(n // 2, np.int8),
                    times=np.arange(n // 2) / 15.0, fps=15.0, summary={"polarity": "dark"})
    a = segment_features(fitted, full, keep_posterior=False)
    b = segment_features(fitted, half, keep_posterior=True)
    assert len(b.syllable) == n // 2 and b.posterior is not None
    assert b.posterior.shape[0] == n // 2
    assert b.bouts[0][0] == 0 and b.bouts[-1][1] == n // 2
    assert np.isclose(b.usage.sum(), 1.0)
    assert np.mean(b.syllable == a.syllable[::2]) > 0.9


def test_crops_framed_otherwise_are_refused_in_words():
    """A model only segments sessions whose crops were framed as its training sessions' were,
    and one fit never mixes framings."""
    from model.segment import segment_features
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_features, fit_model

    syn = make_synthetic(100, states=2, latent_dim=2, seed=1)
    settings = TrainSettings(hidden=16, steps_a=2, steps_c=1, batch=4, min_states=2,
                             pretrain_passes=0.0, min_bout_s=0.0)
    fitted = fit_model([np.clip(syn.frames, 0, 1)], None, states=2, latent_dim=2,
                       settings=settings)  # no framing recorded: an older model (framing 1)
    newer = _features(100, 30.0)
    newer.summary["crop_framing"] = 2
    with pytest.raises(ValueError, match=r"framed by version 2.*version 1: fit a new model"):
        segment_features(fitted, newer)
    with pytest.raises(ValueError, match=r"different versions of preprocessing \(\[1, 2\]\)"):
        fit_features([newer, _features(100, 30.0)])
