"""Segmentation of long sequences: chunked vs full-length inference (svae.md §7.9 test 7), bouts."""

import numpy as np
import pytest
import torch

from model import segment
from model.artifact import FittedModel
from model.ethogram import bouts_from_labels
from model.hmm import one_cpu_thread
from model.priors import MNIWStats, SLDSStats, default_prior, expectations, svi_step
from model.segment import infer_chunked, summarize, window_layout
from model.svae import SLDSSVAE, SVAEConfig, mean_field, observations
from model.synthetic_slds import sample_slds


def _true_globals(z: np.ndarray, x: np.ndarray, K: int):
    """q(θ) concentrated on the generating SLDS: the prior updated with the true statistics."""
    D = x.shape[1]
    X = torch.as_tensor(x)
    prev = torch.cat([X[:-1], torch.ones(len(X) - 1, 1, dtype=X.dtype)], 1)
    nxt = X[1:]
    w = torch.nn.functional.one_hot(torch.as_tensor(z[1:]), K).double()
    dyn = MNIWStats(
        torch.einsum("tk,ti,tj->kij", w, prev, prev),
        torch.einsum("tk,ti,tj->kij", w, prev, nxt),
        torch.einsum("tk,ti,tj->kij", w, nxt, nxt),
        w.sum(0),
    )
    trans = torch.zeros(K, K, dtype=torch.float64)
    np.add.at(trans.numpy(), (z[:-1], z[1:]), 1.0)
    ini = MNIWStats(
        torch.ones(1, 1, dtype=torch.float64),
        X[:1],
        X[:1].T @ X[:1],
        torch.tensor(1.0, dtype=torch.float64),
    )
    st = SLDSStats(
        torch.nn.functional.one_hot(torch.as_tensor(z[:1]), K).double()[0], trans, dyn, ini
    )
    prior = default_prior(K, D)
    return svi_step(prior, prior, st, rho=1.0, scale=1.0)


def test_chunked_matches_full_length_inference():
    K, T = 3, 1500
    z, x = sample_slds(T, states=K, latent_dim=2, seed=4)
    ex = expectations(_true_globals(z, x, K))
    rng = np.random.default_rng(0)
    # Recognition potentials: noisy observations of the true latents with precision 100.
    R = torch.full((T, 2), 100.0, dtype=torch.float64)
    r = R * torch.as_tensor(x + rng.normal(size=x.shape) / 10.0)
    core, margin = 400, 64
    # One thread, as segment_frames runs it: two threads spin-wait on a busy machine (30x).
    with one_cpu_thread(torch.device("cpu")):
        full = mean_field(R[None], r[None], ex, max_sweeps=8, tol=1e-6).gamma
        chunked, path = infer_chunked(
            R, r, ex, core=core, margin=margin, max_sweeps=8, tol=1e-6, settle_sweeps=0
        )
    _, layout = window_layout(T, core, margin)
    # Away from the window edges: frames at least `margin` from any window boundary that is
    # not the sequence boundary.
    edges = {s for s, _, _ in layout if s > 0} | {
        s + core + 2 * margin for s, _, _ in layout if s + core + 2 * margin < T
    }
    ok = np.ones(T, dtype=bool)
    for e in edges:
        ok[max(0, e - margin // 2) : e + margin // 2] = False
    diff = (full[0] - chunked).abs().max(-1).values.numpy()
    assert diff[ok].max() < 1e-3, diff[ok].max()
    # And the labels are the right ones for most frames: inference itself works.
    agree = (chunked.argmax(-1).numpy() == z).mean()
    assert agree > 0.9, agree
    assert (path.numpy() == z).mean() > 0.9


def test_sweeps_stop_when_labels_settle_with_the_same_labels():
    """Segmenting stops sweeping once no label changes (default) and gives the labels that
    sweeping until the marginals converge gives (all but a few ambiguous frames)."""
    K, T = 3, 1500
    z, x = sample_slds(T, states=K, latent_dim=2, seed=4)
    ex = expectations(_true_globals(z, x, K))
    rng = np.random.default_rng(1)
    R = torch.full((T, 2), 100.0, dtype=torch.float64)
    r = R * torch.as_tensor(x + rng.normal(size=x.shape) / 10.0)
    with one_cpu_thread(torch.device("cpu")):
        full = mean_field(R[None], r[None], ex, max_sweeps=30, tol=1e-9)
        quick = mean_field(R[None], r[None], ex, max_sweeps=30, tol=1e-9, settle_sweeps=1)
        _, path_full = infer_chunked(R, r, ex, max_sweeps=30, tol=1e-9, settle_sweeps=0)
        _, path_quick = infer_chunked(R, r, ex, max_sweeps=30, tol=1e-9)
    assert quick.sweeps < full.sweeps
    assert (quick.gamma.argmax(-1) == full.gamma.argmax(-1)).float().mean() > 0.995
    assert (path_quick == path_full).float().mean() > 0.995


def test_window_layout_covers_every_frame_once():
    for n in (1, 50, 511, 512, 513, 2000, 3001):
        length, layout = window_layout(n, core=384, margin=64)
        covered = np.zeros(n, dtype=int)
        for start, k0, k1 in layout:
            assert 0 <= start <= k0 < k1 <= start + length <= n
            covered[k0:k1] += 1
        assert (covered == 1).all()


def test_bouts_and_summary():
    labels = np.array([2, 2, 0, 0, 0, 1, 2, 2])
    assert bouts_from_labels(labels) == [(0, 2, 2), (2, 5, 0), (5, 6, 1), (6, 8, 2)]
    assert bouts_from_labels(np.array([], dtype=int)) == []
    gamma = np.eye(3)[labels] * 0.8 + 0.2 / 3
    seg = summarize(gamma)
    assert (seg.syllable == labels).all()
    assert np.allclose(seg.probability, 0.8 + 0.2 / 3)
    assert seg.transition_counts[2, 0] == 1 and seg.transition_counts[0, 1] == 1
    assert seg.transition_counts[1, 2] == 1 and seg.transition_counts.sum() == 3
    assert np.allclose(seg.usage, [3 / 8, 1 / 8, 4 / 8])
    assert list(seg.durations()) == [2, 3, 1, 2]


def _small_model(kinematics: int = 0) -> FittedModel:
    torch.manual_seed(0)
    cfg = SVAEConfig(states=3, latent_dim=2, height=8, width=8, hidden=16, kinematics=kinematics,
                     kin_mean=[0.5] * kinematics, kin_std=[2.0] * kinematics)
    return FittedModel(cfg, SLDSSVAE(cfg), {})


def test_encode_in_blocks_and_from_bytes_matches_all_at_once(monkeypatch):
    model = _small_model(kinematics=4)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(50, 8, 8), dtype=np.uint8)
    frames = crops.astype(np.float32) / 255.0
    kin = rng.normal(size=(50, 4)).astype(np.float32)
    # Reference: observations of all frames at once, recognised in the same blocks (the
    # network's matmuls round differently with the batch size).
    x = observations(frames, kin, model.config)
    with torch.no_grad():
        parts = [model.svae.recognize(x[i : i + 7]) for i in range(0, 50, 7)]
    R0, r0 = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    monkeypatch.setattr(segment, "_ENCODE_BLOCK", 7)
    for x in (frames, crops):
        R, r = segment.encode(model, x, kin)
        assert torch.equal(R, R0) and torch.equal(r, r0)
    with pytest.raises(ValueError, match=r"\(50, 4\)"):
        segment.encode(model, frames, np.concatenate([kin, kin[:6]]))


def test_segment_frames_leaves_the_thread_count_alone():
    model = _small_model()
    frames = np.random.default_rng(1).random((600, 8, 8)).astype(np.float32)
    threads = torch.get_num_threads()
    a = segment.segment_frames(model, frames)
    assert torch.get_num_threads() == threads
    b = segment.segment_frames(model, (frames * 255).round().astype(np.uint8))
    assert a.syllable.shape == b.syllable.shape == (600,)


def test_windows_in_batches_match_one_batch():
    K, T = 3, 1200
    z, x = sample_slds(T, states=K, latent_dim=2, seed=4)
    ex = expectations(_true_globals(z, x, K))
    rng = np.random.default_rng(1)
    R = torch.full((T, 2), 100.0, dtype=torch.float64)
    r = R * torch.as_tensor(x + rng.normal(size=x.shape) / 10.0)
    kw = {"core": 150, "margin": 48, "max_sweeps": 8, "tol": 1e-6, "settle_sweeps": 0}
    with one_cpu_thread(torch.device("cpu")):
        one, path_one = infer_chunked(R, r, ex, **kw)
        few, path_few = infer_chunked(R, r, ex, **kw, max_windows=3)
    assert (one - few).abs().max() < 1e-3
    assert (path_one == path_few).float().mean() > 0.999
