"""Baselines: HMM kernels against brute force, and recovery of states on easy synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model.baselines import (
    BASELINES,
    arhmm_fit_predict,
    compare,
    forward_backward,
    gaussian_hmm_fit_predict,
    kmeans_fit_predict,
    pca_features,
    viterbi,
)
from model.metrics import ari
from model.preprocess import preprocess_frames
from model.synth import render_session


def _tiny_hmm(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k, t = 3, 5
    trans = rng.dirichlet(np.ones(k), size=k)
    init = rng.dirichlet(np.ones(k))
    log_lik = rng.normal(0, 2, (t, k))
    return np.log(trans), np.log(init), log_lik


def _enumerate(log_trans: np.ndarray, log_init: np.ndarray, log_lik: np.ndarray):
    t, k = log_lik.shape
    paths = np.array(list(itertools.product(range(k), repeat=t)))
    scores = log_init[paths[:, 0]] + log_lik[np.arange(t), paths].sum(axis=1)
    scores += log_trans[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    return paths, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_backward_matches_enumeration(seed: int) -> None:
    log_trans, log_init, log_lik = _tiny_hmm(seed)
    t, k = log_lik.shape
    paths, scores = _enumerate(log_trans, log_init, log_lik)
    log_z = np.logaddexp.reduce(scores)
    w = np.exp(scores - log_z)
    gamma_ref = np.stack([np.bincount(paths[:, i], weights=w, minlength=k) for i in range(t)])
    xi_ref = np.zeros((k, k))
    for i in range(t - 1):
        np.add.at(xi_ref, (paths[:, i], paths[:, i + 1]), w)
    gamma, xi, lz = forward_backward(log_lik, log_trans, log_init)
    np.testing.assert_allclose(gamma, gamma_ref, atol=1e-10)
    np.testing.assert_allclose(xi, xi_ref, atol=1e-10)
    assert lz == pytest.approx(log_z, abs=1e-9)
    path = viterbi(log_lik, log_trans, log_init)
    np.testing.assert_array_equal(path, paths[np.argmax(scores)])


def _sticky_labels(rng: np.random.Generator, t: int, k: int, stay: float) -> np.ndarray:
    z = np.empty(t, dtype=np.int64)
    z[0] = 0
    for i in range(1, t):
        z[i] = z[i - 1] if rng.random() < stay else rng.integers(k)
    return z


def test_gaussian_baselines_recover_separated_states() -> None:
    rng = np.random.default_rng(0)
    z = _sticky_labels(rng, 3000, 4, 0.95)
    means = rng.normal(0, 4, (4, 5))
    x = means[z] + rng.normal(0, 1, (3000, 5))
    assert ari(z, kmeans_fit_predict(x, 4)) > 0.9
    assert ari(z, gaussian_hmm_fit_predict(x, 4)) > 0.95


def test_ar_hmm_finds_dynamics_that_kmeans_cannot_see() -> None:
    """Three states share one stationary distribution but rotate at different speeds."""
    rng = np.random.default_rng(1)
    z = _sticky_labels(rng, 4000, 3, 0.97)
    angles = [0.0, 0.5, -0.5]
    rot = [0.95 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in angles]
    x = np.zeros((4000, 2))
    for t in range(1, 4000):
        x[t] = rot[z[t]] @ x[t - 1] + rng.normal(0, 0.3, 2)
    seqs = [x[:2000], x[2000:]]
    labels = arhmm_fit_predict(seqs, 3, lags=1)
    assert isinstance(labels, list) and [len(s) for s in labels] == [2000, 2000]
    ar_score = ari(z, np.concatenate(labels))
    assert ar_score > 0.8
    assert ari(z, kmeans_fit_predict(x, 3)) < 0.2 < ar_score


def test_common_api_and_pca_shapes() -> None:
    rng = np.random.default_rng(2)
    crops = [rng.random((60, 8, 8)).astype(np.float32), rng.random((40, 8, 8)).astype(np.float32)]
    feats = pca_features(crops, n_components=4)
    assert [f.shape for f in feats] == [(60, 4), (40, 4)]
    single = pca_features(crops[0], n_components=4)
    assert isinstance(single, np.ndarray) and single.shape == (60, 4)
    for name, fit_predict in BASELINES.items():
        out = fit_predict(feats, 3, seed=0)
        assert [len(o) for o in out] == [60, 40], name
        assert all(o.max() < 3 for o in out), name
        one = fit_predict(single, 3, seed=0)
        assert isinstance(one, np.ndarray) and one.shape == (60,), name
    with pytest.raises(ValueError):
        arhmm_fit_predict(np.zeros((3, 2)), 2, lags=3)


def test_baselines_find_behaviour_in_synthetic_video() -> None:
    """Render -> preprocess -> PCA -> each baseline: far above chance (ARI 0) on known truth."""
    frames, truth = render_session(60, seed=21, size=(200, 150), body_length=24.0)
    crops = preprocess_frames(np.stack(list(frames))).crops
    feats = pca_features(crops, n_components=8)
    for name, fit_predict in BASELINES.items():
        labels = fit_predict(feats, 8, seed=0)
        assert ari(truth.behaviour, labels) > 0.2, name
    # Shuffling time destroys what the AR-HMM uses; it must then lose its edge.
    perm = np.random.default_rng(0).permutation(len(feats))
    shuffled = arhmm_fit_predict(feats[perm], 8)
    assert ari(truth.behaviour[perm], shuffled) < ari(truth.behaviour, arhmm_fit_predict(feats, 8))


def test_compare_reports_every_baseline() -> None:
    rng = np.random.default_rng(3)
    z = _sticky_labels(rng, 600, 3, 0.95)
    x = np.array([[0, 0], [6, 0], [0, 6]])[z] + rng.normal(0, 1, (600, 2))
    results = compare(x, z, 3, fps=30.0)
    assert list(results) == list(BASELINES)
    for figures in results.values():
        assert figures["ari"] > 0.8 and figures["seconds"] > 0
        assert {"nmi", "accuracy", "states_used", "median_bout_s"} <= set(figures)
