"""Segmentation of long sequences: chunked vs full-length inference (svae.md §7.9 test 7), bouts."""

import numpy as np
import torch

from model.priors import MNIWStats, SLDSStats, default_prior, expectations, svi_step
from model.segment import bouts_from_labels, infer_chunked, summarize, window_layout
from model.svae import mean_field
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
    K, T = 3, 3000
    z, x = sample_slds(T, states=K, latent_dim=2, seed=4)
    ex = expectations(_true_globals(z, x, K))
    rng = np.random.default_rng(0)
    # Recognition potentials: noisy observations of the true latents with precision 100.
    R = torch.full((T, 2), 100.0, dtype=torch.float64)
    r = R * torch.as_tensor(x + rng.normal(size=x.shape) / 10.0)
    full = mean_field(R[None], r[None], ex, max_sweeps=8, tol=1e-6).gamma
    core, margin = 400, 64
    chunked, path = infer_chunked(R, r, ex, core=core, margin=margin, max_sweeps=8, tol=1e-6)
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
