"""SLDS-SVAE local inference: the local KL against brute force (svae.md §3.3, §7.9 test 3)."""

import itertools
import math

import pytest
import torch

from model.kalman import KalmanResult
from model.priors import MNIWStats, SLDSStats, default_prior, expectations, svi_step
from model.svae import (
    SLDSSVAE,
    SVAEConfig,
    local_posterior,
    node_log_potentials,
    sufficient_stats,
)

# Every test here runs with float64 as the default dtype (restored afterwards).
pytestmark = pytest.mark.usefixtures("float64")


def _random_globals(K: int, D: int, seed: int):
    """A q(θ) away from the prior: the prior updated by random statistics."""
    gen = torch.Generator().manual_seed(seed)
    prior = default_prior(K, D, alpha=0.5, dwell_frames=3.0)
    n = 30
    X = torch.randn(K, n, D + 1, generator=gen)
    X[..., D] = 1.0
    F = 0.6 * torch.randn(K, D, D + 1, generator=gen)
    Y = X @ F.transpose(-1, -2) + 0.3 * torch.randn(K, n, D, generator=gen)
    dyn = MNIWStats(
        X.transpose(1, 2) @ X,
        X.transpose(1, 2) @ Y,
        Y.transpose(1, 2) @ Y,
        torch.full((K,), float(n)),
    )
    x1 = torch.randn(n, D, generator=gen) + 0.5
    ini = MNIWStats(torch.full((1, 1), float(n)), x1.sum(0)[None], x1.T @ x1, torch.tensor(n * 1.0))
    st = SLDSStats(torch.rand(K, generator=gen) * 3, torch.rand(K, K, generator=gen) * 5, dyn, ini)
    return svi_step(prior, prior, st, rho=1.0, scale=1.0)


def test_local_kl_matches_brute_force():
    K, T, D = 2, 3, 1
    params = _random_globals(K, D, seed=0)
    ex = expectations(params)
    gen = torch.Generator().manual_seed(1)
    R = torch.rand(1, T, D, generator=gen) * 2 + 0.5
    r = torch.randn(1, T, D, generator=gen) * 2
    post = local_posterior(R, r, ex, max_sweeps=500, tol=1e-13)
    w = post.gamma[0]

    # --- brute force: q(x) on a grid, q(z) by enumeration -----------------------------------
    dyn, ini = ex.dynamics, ex.initial
    mu, sd = post.kalman.mean[0, :, 0], post.kalman.cov[0, :, 0, 0].sqrt()
    n = 81
    axes = [
        torch.linspace(float(m - 9 * s), float(m + 9 * s), n) for m, s in zip(mu, sd, strict=True)
    ]
    cell = math.prod(float(a[1] - a[0]) for a in axes)
    x1, x2, x3 = torch.meshgrid(*axes, indexing="ij")
    xs = [x1, x2, x3]

    def log_init(x):
        return (
            -0.5 * ini.EQi[0, 0] * x**2
            + ini.EQiA[0, 0] * x
            - 0.5 * ini.EAtQiA[0, 0]
            + 0.5 * ini.Elogdet
            - 0.5 * math.log(2 * math.pi)
        )

    def log_trans(k, xp, xn):
        # E_θ log N(xn | F xp + b, Q) written out for D = 1.
        a = dyn.EAtQiA[k]
        return (
            -0.5 * dyn.EQi[k, 0, 0] * xn**2
            + dyn.EQiA[k, 0, 0] * xn * xp
            + dyn.EQiA[k, 0, 1] * xn
            - 0.5 * (a[0, 0] * xp**2 + 2 * a[0, 1] * xp + a[1, 1])
            + 0.5 * dyn.Elogdet[k]
            - 0.5 * math.log(2 * math.pi)
        )

    psi = sum(-0.5 * R[0, t, 0] * xs[t] ** 2 + r[0, t, 0] * xs[t] for t in range(T))
    expected_pair = sum(
        sum(w[t + 1, k] * log_trans(k, xs[t], xs[t + 1]) for k in range(K)) for t in range(T - 1)
    )
    log_qx_un = log_init(x1) + expected_pair + psi
    log_zx = torch.logsumexp(log_qx_un.flatten(), 0) + math.log(cell)
    log_qx = log_qx_un - log_zx
    qx = torch.exp(log_qx) * cell
    assert abs(qx.sum().item() - 1) < 1e-9

    L = torch.zeros(T, K)
    for t in range(1, T):
        for k in range(K):
            L[t, k] = (qx * log_trans(k, xs[t - 1], xs[t])).sum()
    paths = list(itertools.product(range(K), repeat=T))
    log_pz = torch.stack(
        [ex.log_pi0[p[0]] + sum(ex.log_trans[p[t - 1], p[t]] for t in range(1, T)) for p in paths]
    )
    log_qz_un = log_pz + torch.stack([sum(L[t, p[t]] for t in range(T)) for p in paths])
    log_qz = log_qz_un - torch.logsumexp(log_qz_un, 0)
    qz = torch.exp(log_qz)
    marg = torch.zeros(T, K)
    for p, q in zip(paths, qz, strict=True):
        for t in range(T):
            marg[t, p[t]] += q
    assert torch.allclose(marg, w, atol=1e-8)  # the loop converged to the mean-field fixed point

    # E_{q(z) q(x)} log p(x | z) by enumeration and quadrature.
    e_log_px = torch.stack(
        [
            (
                qx * (log_init(x1) + sum(log_trans(p[t], xs[t - 1], xs[t]) for t in range(1, T)))
            ).sum()
            for p in paths
        ]
    )
    kl = ((qz * (log_qz - log_pz - e_log_px)).sum() + (qx * log_qx).sum()).item()
    assert abs(post.kl.item() - kl) < 1e-7, (post.kl.item(), kl)
    # The 2016 code's KL omits the cross term E log p(x|z); it must not agree.
    assert abs((post.kl - (post.log_lik[0] * w).sum()).item() - kl) > 1e-3


def test_kl_is_differentiable_and_stats_have_the_right_counts():
    K, T, D, B = 3, 20, 2, 4
    params = _random_globals(K, D, seed=2)
    ex = expectations(params)
    gen = torch.Generator().manual_seed(3)
    R = (torch.rand(B, T, D, generator=gen) + 0.5).requires_grad_(True)
    r = torch.randn(B, T, D, generator=gen).requires_grad_(True)
    post = local_posterior(R, r, ex, num_samples=2, generator=gen)
    assert post.kalman.sample.shape == (B, 2, T, D)
    assert torch.all(post.kl > -1e-9)
    post.kl.sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    st = sufficient_stats(post)
    assert torch.allclose(st.dynamics.n.sum(), torch.tensor(float(B * (T - 1))))
    assert torch.allclose(st.trans_counts.sum(), torch.tensor(float(B * (T - 1))))
    assert torch.allclose(st.init_counts.sum(), torch.tensor(float(B)))


def test_bound_runs_and_trains_one_step():
    torch.manual_seed(0)
    cfg = SVAEConfig(states=3, latent_dim=2, height=6, width=5, hidden=16)
    model = SLDSSVAE(cfg)
    frames = torch.rand(2, 10, cfg.pixels, dtype=torch.float32)
    out = model.bound(frames, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    before = model.params.trans.clone()
    model.svi_update(sufficient_stats(out.posterior), rho=0.5, scale=3.0)
    assert not torch.allclose(before, model.params.trans)


def test_short_fit_recovers_synthetic_states():
    """A few hundred steps on a 3-state SLDS video: the states come back well above chance."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from model.segment import segment_frames
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    torch.set_num_threads(1)
    syn = make_synthetic(1600, states=3, latent_dim=2, seed=1)
    calls = []
    model = fit_model(
        [syn.frames], states=6, latent_dim=3, seed=0,
        progress=lambda f, m, d: calls.append((f, m, d)),
        settings=TrainSettings(hidden=64, steps_a=150, steps_c=60, batch=16, min_states=2),
    )
    seg = segment_frames(model, syn.frames)
    ari = adjusted_rand_score(syn.states, seg.syllable)
    assert ari > 0.5, ari
    assert 2 <= model.summary["states_used"] <= 6
    # Syllable ids are ordered by usage on the training data.
    usage = model.summary["usage"]
    assert usage == sorted(usage, reverse=True)
    fractions = [c[0] for c in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("elbo_per_frame" in c[2] for c in calls)
    assert len(seg.syllable) == len(syn.frames) and np.all(seg.probability <= 1.0)


def test_stage_b_gaussian_hmm_finds_the_regions():
    """Three sticky regions of a latent space, started with 8 states: about 3 are kept."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from model.stage_b import fit_sticky_ghmm

    rng = np.random.default_rng(3)
    z = np.repeat(rng.integers(0, 3, size=40 * 64 // 16), 16)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    x = centres[z] + 0.4 * rng.standard_normal((z.size, 3))
    X = torch.as_tensor(x).reshape(40, 64, 3)
    gamma, pair, active = fit_sticky_ghmm(X, 10, start_states=8, seed=0, merge_penalty=3.0)
    labels = gamma.argmax(-1).reshape(-1).numpy()
    assert 3 <= int(active.sum()) <= 4
    assert adjusted_rand_score(z, labels) > 0.9
    assert gamma.shape == (40, 64, 10) and torch.allclose(gamma.sum(-1), torch.ones(40, 64,
                                                                              dtype=X.dtype))
    assert np.isclose(float(pair.sum()), 40 * 63)


def test_stage_b_finds_regions_seen_only_in_the_kinematics():
    """Stage B appends the observed kinematics to the latents: regions that the latents do not
    show (pure noise here) but the kinematics do are found, on either scaling of the latents."""
    import numpy as np
    import pytest
    from sklearn.metrics import adjusted_rand_score

    from model.stage_b import fit_sticky_ghmm

    rng = np.random.default_rng(5)
    z = np.repeat(rng.integers(0, 3, size=40 * 64 // 16), 16)
    noise = torch.as_tensor(rng.standard_normal((40, 64, 2)))
    kin = np.array([-3.0, 0.0, 3.0])[z] + 0.3 * rng.standard_normal(z.size)
    extra = torch.as_tensor(kin).reshape(40, 64, 1)
    for scale in ("global", "dim"):
        gamma, _, active = fit_sticky_ghmm(noise, 10, start_states=8, seed=0, merge_penalty=3.0,
                                           min_states=2, scale=scale, extra=extra)
        labels = gamma.argmax(-1).reshape(-1).numpy()
        assert adjusted_rand_score(z, labels) > 0.9, scale
        assert 3 <= int(active.sum()) <= 4
    # Without the kinematics the same latents carry nothing to find.
    gamma, _, _ = fit_sticky_ghmm(noise, 10, start_states=8, seed=0, merge_penalty=3.0,
                                  min_states=2, scale="global")
    assert adjusted_rand_score(z, gamma.argmax(-1).reshape(-1).numpy()) < 0.2
    with pytest.raises(ValueError, match="scale"):
        fit_sticky_ghmm(noise, 10, scale="unit")


def test_stage_b_keeps_as_many_states_on_more_video_of_the_same_behaviours():
    """Three behaviours, each three close lobes (not Gaussian): on 4,096 frames stage B finds
    the three; on 8x the frames of the same generator, an uncapped merge test keeps lobes
    apart, the capped one finds the same three behaviours as on the short video."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from model.stage_b import fit_sticky_ghmm

    lobes = np.random.default_rng(0).normal(0.0, 3.0, (3, 3, 4))
    lobes = lobes[:, :1] + 0.25 * (lobes - lobes[:, :1])

    def video(n_seq: int) -> tuple[torch.Tensor, np.ndarray]:
        rng = np.random.default_rng(3)
        z = np.repeat(rng.integers(0, 3, (n_seq, 4)), 16, axis=1)
        x = lobes[z, rng.integers(0, 3, z.shape)] + 0.5 * rng.standard_normal((*z.shape, 4))
        return torch.as_tensor(x), z.ravel()

    def fit(n_seq: int, evidence: int) -> tuple[int, float]:
        X, z = video(n_seq)
        gamma, _, active = fit_sticky_ghmm(X, 10, start_states=8, seed=0, min_states=2,
                                           evidence_frames=evidence)
        return int(active.sum()), adjusted_rand_score(z, gamma.argmax(-1).reshape(-1).numpy())

    short, short_ari = fit(64, 4096)
    assert short == 3 and short_ari > 0.95
    uncapped, uncapped_ari = fit(512, 0)
    assert uncapped > 3 and uncapped_ari < 0.9
    capped, capped_ari = fit(512, 4096)
    assert capped == 3 and capped_ari > 0.95


def test_node_log_potentials_match_the_expected_log_density_term_by_term():
    """L_{t,k} = -½tr(E[Q⁻¹] E xₜxₜᵀ) + tr(E[Q⁻¹A]ᵀ E xₜx̃ₜ₋₁ᵀ) - ½tr(E[AᵀQ⁻¹A] E x̃ₜ₋₁x̃ₜ₋₁ᵀ)
    + ½E log|Q⁻¹| - D/2 log 2π, written out per frame with x̃ = [x; 1] (the fast version sums
    the blocks of x̃ separately)."""
    K, D, B, T = 3, 2, 2, 5
    dyn = expectations(_random_globals(K, D, seed=4)).dynamics
    gen = torch.Generator().manual_seed(5)
    mean = torch.randn(B, T, D, generator=gen)
    a = torch.randn(B, T, D, D, generator=gen)
    cov = a @ a.transpose(-1, -2) + 0.1 * torch.eye(D)
    cross = 0.3 * torch.randn(B, T - 1, D, D, generator=gen)
    kal = KalmanResult(mean, cov, cross, torch.zeros(B), None)
    L = node_log_potentials(kal, dyn)
    assert L.shape == (B, T, K) and torch.all(L[:, 0] == 0)
    one = torch.ones(1)
    for b, t, k in itertools.product(range(B), range(1, T), range(K)):
        prev = torch.cat([mean[b, t - 1], one])
        Eprev = torch.outer(prev, prev)
        Eprev[:D, :D] += cov[b, t - 1]
        Ecross = torch.outer(mean[b, t], prev)  # E[x_t x̃_{t-1}ᵀ]
        Ecross[:, :D] += cross[b, t - 1].T  # cross is Cov[x_{t-1}, x_t]
        Enext = torch.outer(mean[b, t], mean[b, t]) + cov[b, t]
        want = (
            -0.5 * torch.trace(dyn.EQi[k] @ Enext)
            + torch.trace(dyn.EQiA[k].T @ Ecross)
            - 0.5 * torch.trace(dyn.EAtQiA[k] @ Eprev)
            + 0.5 * dyn.Elogdet[k]
            - 0.5 * D * math.log(2 * math.pi)
        )
        assert torch.isclose(L[b, t, k], want, rtol=1e-10, atol=1e-10)


def test_fit_is_reproducible():
    """The same sessions and seed give the same model, bit for bit: no unseeded randomness
    anywhere in stages A-C (what a lab re-running a fit, and the end-to-end tests, rely on)."""
    from torch.utils._pytree import tree_leaves

    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(600, states=3, latent_dim=2, seed=3)
    settings = TrainSettings(hidden=32, steps_a=30, steps_c=10, batch=8, min_states=2)

    def weights(seed: int) -> list[torch.Tensor]:
        fitted = fit_model([syn.frames], states=5, latent_dim=3, seed=seed, settings=settings)
        m = fitted.svae
        return [*m.state_dict().values(), *tree_leaves(tuple(m.params)), *tree_leaves(m.prior)]

    first, again, other = weights(4), weights(4), weights(5)
    assert len(first) == len(again) > 10
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first, other, strict=True))


def test_short_lived_states_are_the_passages_between_syllables():
    """States whose bouts last 2-4 frames between 10-frame syllables are passages: they are the
    ones picked, shortest first; one too small to count as in use always goes, one in use only
    while ``min_states`` others stay in use."""
    import numpy as np

    from model.train import _short_lived_states

    # Shares: 0 and 2 38 % each, 1 15 % (in use: above 1/(2*4)), 3 8 % (not in use).
    one = np.tile(np.concatenate([[0] * 10, [1] * 4, [2] * 10, [3] * 2]), 6)
    assert _short_lived_states([one, one], 4, 6.0, 1) == [3, 1]
    assert _short_lived_states([one], 4, 6.0, 2) == [3, 1]
    assert _short_lived_states([one], 4, 6.0, 3) == [3]
    assert _short_lived_states([one], 4, 3.0, 1) == [3]  # state 1's 4-frame bouts stay
    assert _short_lived_states([one], 4, 6.0, 5) == [3]  # fewer in use than the floor
    # Of six states, four in use (1: 11 %, 3: 15 %), both short, one to spare: the shorter goes.
    two = np.tile(np.concatenate([[0] * 10, [1] * 3, [2] * 10, [3] * 4]), 6)
    assert _short_lived_states([two], 6, 6.0, 3) == [1]
    assert _short_lived_states([two], 6, 6.0, 2) == [1, 3]
    assert _short_lived_states([one], 4, 0.0, 1) == []


def test_switched_off_state_is_never_entered():
    """Even where a switched-off state explains the frames best, q(z) gives it no weight."""
    from model.hmm import forward_backward
    from model.priors import default_prior, dirichlet_expected_log
    from model.train import _switch_off

    params = _switch_off(default_prior(3, 2), [2])
    log_pi0 = dirichlet_expected_log(params.init)
    log_trans = dirichlet_expected_log(params.trans)
    assert torch.isfinite(log_trans).all() and float(log_trans[:, 2].max()) < -1e6
    ll = torch.zeros(1, 30, 3, dtype=torch.float64)
    ll[..., 2] = 20.0  # state 2 fits every frame by far the best
    gamma = forward_backward(log_pi0, log_trans, ll).gamma
    assert float(gamma[..., 2].max()) < 1e-12
    assert torch.allclose(gamma.sum(-1), torch.ones(1, 30, dtype=torch.float64))


def test_frame_pretraining_encodes_the_pose():
    """Frame-by-frame VAE pretraining (before the dynamics) leaves an encoder whose means
    carry both factors that make the frames, each linearly readable (R² > 0.9)."""
    import numpy as np

    from model.svae import SLDSSVAE, SVAEConfig
    from model.train import _pretrain_frames

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pose = rng.uniform(-1, 1, size=(1024, 2))
    grid = np.linspace(-1, 1, 8)
    gx, gy = np.meshgrid(grid, grid)
    # A blob whose position on the 8x8 crop is the pose.
    frames = np.exp(-((gx[None] - 0.6 * pose[:, :1, None]) ** 2
                      + (gy[None] - 0.6 * pose[:, 1:, None]) ** 2) / 0.1)
    data = torch.as_tensor(frames.reshape(16, 64, 64), dtype=torch.float32)
    model = SLDSSVAE(SVAEConfig(states=1, latent_dim=3, height=8, width=8, hidden=64))
    _pretrain_frames(model, data, 400, lr=3e-3, batch=256, gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        R, r = model.encoder(data.reshape(-1, 64))
    mean = (r / R).numpy()
    design = np.concatenate([mean, np.ones((len(mean), 1))], 1)
    coef, *_ = np.linalg.lstsq(design, pose, rcond=None)
    resid = pose - design @ coef
    r2 = 1 - resid.var(0) / pose.var(0)
    assert (r2 > 0.9).all(), r2


def test_fit_with_frame_pretraining_and_short_lived_states_switched_off():
    """Frame pretraining and switching off short-lived states run inside a fit: switched-off
    states keep no transition mass, are counted in the summary, and segmentation never labels a
    frame with them."""
    import numpy as np

    from model.segment import segment_frames
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(600, states=3, latent_dim=2, seed=3)
    settings = TrainSettings(hidden=32, steps_a=30, steps_c=10, batch=8, min_states=2,
                             pretrain_passes=1.0, min_bout_s=1.0)
    fitted = fit_model([syn.frames], states=5, latent_dim=3, seed=4, settings=settings)
    off = np.flatnonzero((fitted.svae.params.trans.max(0).values < 1e-6).cpu().numpy())
    assert fitted.summary["short_lived_states_dropped"] == len(off) >= 1
    assert fitted.summary["states_used"] >= 2
    assert 2 <= fitted.summary["stage_b_states"] <= 5  # never below min_states, at most K
    labels = segment_frames(fitted, syn.frames).syllable
    assert not np.isin(labels, off).any()


def test_kinematics_in_the_state_are_observed_dimensions(tmp_path):
    """With ``kin_in_state`` the kinematics are the last state dimensions, observed with noise
    ``kin_noise``: the networks see only the pixels, recognition gives the measurement's exact
    potential, the likelihood counts it, and a saved model reads back the same."""
    from model.artifact import FittedModel

    torch.manual_seed(0)
    cfg = SVAEConfig(states=3, latent_dim=2, height=6, width=5, hidden=16, kinematics=2,
                     kin_mean=[0.0, 0.0], kin_std=[1.0, 1.0], kin_in_state=True, kin_noise=0.1)
    model = SLDSSVAE(cfg)
    assert cfg.state_dim == 4
    assert model.prior.dynamics.VinvMt.shape[-2:] == (5, 4)  # x_t from [x_{t-1}; 1]
    assert model.encoder.net[0].in_features == 30 and model.decoder.net[-1].out_features == 30
    frames = torch.rand(2, 10, 32, dtype=torch.float32)
    R, r = model.recognize(frames)
    assert R.shape == (2, 10, 4)
    assert torch.allclose(R[..., 2:], torch.full_like(R[..., 2:], 100.0))
    assert torch.allclose(r[..., 2:] / R[..., 2:], frames[..., 30:].double(), atol=1e-6)
    # Moving only the kinematic dimensions of x changes log p by the Gaussian measurement term.
    x = torch.randn(2, 10, 4, dtype=torch.float32)
    x2 = x.clone()
    x2[..., 2:] += 0.05
    k = frames[..., 30:]
    expected = -0.5 * (((k - x2[..., 2:]) ** 2 - (k - x[..., 2:]) ** 2) / 0.01).sum(-1)
    diff = model.log_likelihood(x2, frames) - model.log_likelihood(x, frames)
    assert torch.allclose(diff, expected, atol=1e-3)
    out = model.bound(frames, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.posterior.kalman.mean.shape == (2, 10, 4)
    FittedModel(cfg, model, {}).save(tmp_path)
    loaded = FittedModel.load(tmp_path)
    assert loaded.config.kin_in_state and loaded.config.kin_noise == 0.1
    R2, r2 = loaded.svae.recognize(frames)
    assert torch.equal(R, R2) and torch.equal(r, r2)


def test_fit_on_both_polarities_tells_the_networks_which_is_which():
    """Sessions of both polarities: encoder and decoder get each session's polarity as an input
    (so the latents need not encode how the two kinds of video look), the saved config says so,
    and segmenting then needs the session's polarity. One polarity: no such input."""
    import numpy as np
    import pytest

    from model.segment import segment_frames
    from model.svae import observations
    from model.synthetic_slds import make_synthetic
    from model.train import TrainSettings, fit_model

    syn = make_synthetic(400, states=3, latent_dim=2, seed=3)
    halves = [syn.frames[:200], syn.frames[200:]]
    settings = TrainSettings(hidden=16, steps_a=5, steps_c=3, batch=4, min_states=2,
                             pretrain_passes=0.0, min_bout_s=0.0)
    fitted = fit_model(halves, states=3, latent_dim=2, seed=0, settings=settings,
                       polarities=["dark", "bright"])
    cfg = fitted.config
    assert cfg.polarity_input and cfg.conditions == 1
    assert fitted.svae.encoder.net[0].in_features == cfg.pixels + 1
    assert fitted.svae.decoder.net[0].in_features == cfg.latent_dim + 1
    x = observations(halves[0], None, cfg, "bright")
    assert x.shape == (200, cfg.pixels + 1) and bool((x[:, -1] == 1.0).all())
    assert bool((observations(halves[0], None, cfg, "dark")[:, -1] == -1.0).all())
    with pytest.raises(ValueError, match="polarity"):
        segment_frames(fitted, halves[0])
    labels = segment_frames(fitted, halves[0], polarity="dark").syllable
    assert labels.shape == (200,) and np.all(labels >= 0)
    single = fit_model(halves, states=3, latent_dim=2, seed=0, settings=settings,
                       polarities=["dark", "dark"])
    assert not single.config.polarity_input
    assert single.svae.encoder.net[0].in_features == cfg.pixels
    with pytest.raises(ValueError, match="one polarity per session"):
        fit_model(halves, states=3, latent_dim=2, settings=settings, polarities=["dark"])


def test_local_inference_is_the_same_with_either_smoother(monkeypatch):
    """The accelerator's smoother (cyclic reduction) gives the CPU's local posterior: q(z), the
    local KL and its gradient in the recognition potentials."""
    K, T, D, B = 3, 37, 2, 2
    ex = expectations(_random_globals(K, D, seed=4))
    gen = torch.Generator().manual_seed(5)
    R0, r0 = torch.rand(B, T, D, generator=gen) + 0.5, torch.randn(B, T, D, generator=gen)
    results = []
    for choice in ("sequential", "parallel"):
        monkeypatch.setenv("SYLLABARY_SMOOTHER", choice)
        R, r = R0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
        post = local_posterior(R, r, ex, max_sweeps=20, tol=1e-10)
        post.kl.sum().backward()
        results.append((post.gamma, post.kl, post.kalman.mean, R.grad, r.grad))
    for seq, par in zip(*results, strict=True):
        assert torch.allclose(par, seq, atol=1e-8, rtol=1e-8), (par - seq).abs().max()
    monkeypatch.setenv("SYLLABARY_SMOOTHER", "fast")
    with pytest.raises(ValueError, match="auto, parallel or sequential"):
        local_posterior(R0, r0, ex)
