"""Fit an SLDS-SVAE to a set of sessions, following the initialisation recipe of svae.md §7.6.

Stage A: a one-state LDS-SVAE (the same code with K = 1) learns an encoder, a decoder and a
         smooth latent space, with KL and learning-rate warm-up, after the encoder and decoder
         first learn frame by frame (a plain VAE; ``TrainSettings.pretrain_passes``).
Stage B: the K = 1 model smooths every subsequence; a sticky Gaussian HMM (or AR(1)-HMM) is
         fitted to those latent means by EM (k-means to start), merging states by a BIC test,
         and turned into MNIW / Dirichlet / NIW natural parameters with capped pseudo-counts so
         that SVI can still move them.
Stage C: the full K-state SLDS-SVAE: Adam on the networks, natural-gradient SVI on q(θ), q(z)
         warm-started from each subsequence's marginals of the previous epoch.

At the end, states whose median bout is shorter than a syllable are switched off
(``TrainSettings.min_bout_s``), the states are renumbered by usage (syllable 0 is the most
used) once and for all, and the states in use (occupancy > 1/(2K)) and the median syllable
duration are measured by segmenting the training sessions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans

from model.artifact import FittedModel, default_device
from model.ethogram import bout_lengths, bouts_from_labels
from model.features import Features
from model.hmm import forward_backward
from model.kinematics import KINEMATICS_RECIPE
from model.kinematics import standardizer as kin_standardizer
from model.priors import MNIW, MNIWStats, SLDSParams, SLDSStats
from model.segment import DEFAULT_MIN_BOUT, infer_chunked, merge_short_bouts
from model.svae import (
    SLDSSVAE,
    SVAEConfig,
    TransitionMoments,
    input_size,
    local_posterior,
    observations,
    params_to,
    sufficient_stats,
    transition_moments,
)

ProgressFn = Callable[[float, str, dict], None]


@dataclass
class TrainSettings:
    """Knobs of the fit; the defaults target ~15 min for 30 min of video on a 2-core CPU."""

    seq_len: int = 64
    batch: int = 32
    # Stage C moves the networks and q(θ) gently: on synthetic SLDS videos, larger steps (lr
    # 1e-3, ρ 0.1–0.5) and potential masking all drifted away from the true states.
    lr: float = 1e-4
    lr_a: float = 2e-3  # stage A (networks from scratch)
    hidden: int = 200
    warmup_steps: int = 100
    steps_a: int = 0  # 0: derived from the data size
    steps_c: int = 0
    sweeps: int = 4
    # SVI step size in stage C, decayed as (1 + t/τ)^-0.6. On the synthetic benchmark, stage C
    # at ρ = 0.02 moved q(θ) away from stage B's states (ARI 0.53 against 0.64 at 0.002).
    rho_c: float = 0.002
    rho_tau: float = 100.0
    em_iters: int = 12
    merge_penalty: float = 1.0  # × BIC cost of a state, for merging states in stage B
    # Stage B never merges, and ``min_bout_s`` never switches off, below this many states in use
    # (states too small to count as in use go regardless). On the real tracktor clip the BIC
    # test alone merged down to 2–3 states at any penalty from 0.3 to 10; behaviour has more.
    # With 6 and both settings below on, the power test's grooming merged into rearing.
    min_states: int = 8
    pseudo_count_cap: float = 500.0
    mask_fraction: float = 0.0  # share of subsequences with a masked window in stage C
    max_side: int = 32
    # Transition pseudo-counts per row, as a multiple of the frames per state (K-average).
    trans_strength: float = 10.0
    # Each kinematic number counts as this many pixels in the likelihood (when given). At 256,
    # four kinematics weigh as much as a 32x32 crop: on two synthetic sets (10 x 60 s each,
    # seeds 2026 and 11) ARI was 0.641 and 0.636 against 0.643 and 0.454 at 1024, where the
    # latents kept too little of the pose.
    kin_weight: float = 256.0
    # Stage B's initial segmentation: "gaussian" (sticky Gaussian HMM on latent position and
    # velocity) or "ar" (sticky AR(1)-HMM on the latents).
    stage_b: str = "gaussian"
    start_states: int = 16
    velocity_weight: float = 0.0
    # Stage B scales the latents by one overall spread ("global": dimensions the encoder uses
    # little stay small) or each to unit variance ("dim": noise dimensions weigh as much as
    # informative ones), and appends the standardised kinematics times this weight (0: none).
    stage_b_scale: str = "global"
    stage_b_kinematics: float = 1.0
    # After the fit, states whose median bout is shorter than this (two rounds, never below
    # ``min_states`` in use) are switched off and the sessions segmented again: on synthetic
    # sets they were the 100-130 ms passages between two movements, not syllables. 0.3 rather
    # than 0.2: on the real tracktor clip no state was under 200 ms, the median bout was 267 ms,
    # and 0.3 switched off five states of 200-233 ms (median 333 ms). 0: off.
    min_bout_s: float = 0.3
    # Before stage A, encoder and decoder learn frame by frame (a VAE with a standard normal
    # prior) for this many passes over the frames (200-1000 steps; 0: none). Stage A from
    # scratch leaves the body's sideways bend out of the latents (R² 0.4 for the crops' second
    # principal component, 18 % of their variance; 0.55 after the 264 steps of 30 passes over
    # 10 min of video, 0.98 after 1000) and splits rearing by polarity. With ``min_bout_s`` it
    # raised synthetic ARI by 0.07-0.09 (docs/benchmarks.md, sessions 6-7).
    pretrain_passes: float = 30.0
    pretrain_batch: int = 2048
    # The kinematics enter the latent state as observed dimensions (SVAEConfig.kin_in_state)
    # rather than through encoder and decoder (``kin_weight`` and ``stage_b_kinematics`` then
    # play no part: stage B sees them in the latents). Through the networks, the latents mixed
    # pose with movement: a Gaussian HMM given the true behaviours reached ARI 0.65 on stage
    # A's latents + kinematics, 0.70 with the kinematics in the state (synthetic set 2026).
    kin_in_state: bool = True
    # The kinematics' noise in the state (standardised units). With recipe-2 kinematics (lightly
    # smoothed), 0.3 lets the Kalman smoother do the smoothing: ARI 0.82 against 0.72 at 0.1,
    # where the states followed the features' noise and split walking and sniffing in two.
    kin_noise: float = 0.3
    # When the sessions include both polarities, encoder and decoder are told each one's:
    # otherwise states split by polarity (rearing, pausing: dark and bright sessions in
    # different syllables) and stage B's ARI was 0.42 against 0.50 with it.
    polarity_input: bool = True


def _subsequences(sessions: list[torch.Tensor], seq_len: int) -> torch.Tensor:
    """Cut (T_i, P) sessions into non-overlapping (N, seq_len, P) pieces (short tails dropped)."""
    pieces = []
    for x in sessions:
        n = x.shape[0] // seq_len
        if n:
            pieces.append(x[: n * seq_len].reshape(n, seq_len, -1))
    if not pieces:
        raise ValueError(f"need at least {seq_len} frames in one session to fit a model")
    return torch.cat(pieces)


def _rho(step: int, base: float, tau: float) -> float:
    return base * (1.0 + step / tau) ** -0.6


def _run_steps(
    model: SLDSSVAE,
    data: torch.Tensor,
    steps: int,
    settings: TrainSettings,
    *,
    rng: np.random.Generator,
    gen: torch.Generator,
    rho_base: float,
    lr: float,
    sweeps: int,
    kl_warmup: int,
    cache: torch.Tensor | None,
    masking: bool,
    on_step: Callable[[int, dict], None],
) -> None:
    """Adam + SVI steps on random minibatches of subsequences (svae.md §7.3)."""
    device = model.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_seq = data.shape[0]
    B = min(settings.batch, n_seq)
    scale = n_seq / B
    order = rng.permutation(n_seq)
    pos = 0
    for step in range(steps):
        if pos + B > n_seq:
            order, pos = rng.permutation(n_seq), 0
        idx = torch.as_tensor(order[pos : pos + B])
        pos += B
        batch = data[idx].to(device)
        warm = min(settings.warmup_steps, max(1, steps // 5))
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warm)
        mask = None
        if masking:
            mask = _random_mask(B, batch.shape[1], settings.mask_fraction, rng, device)
        w_init = cache[idx].to(device=device, dtype=torch.float64) if cache is not None else None
        beta = min(1.0, (step + 1) / kl_warmup) if kl_warmup > 0 else 1.0
        out = model.bound(batch, kl_weight=beta, max_sweeps=sweeps, mask=mask, w_init=w_init,
                          generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        model.svi_update(sufficient_stats(out.posterior), _rho(step, rho_base, settings.rho_tau),
                         scale)
        if cache is not None:
            cache[idx] = out.posterior.gamma.to(cache.device, cache.dtype)
        on_step(step, {
            "elbo_per_frame": float(out.elbo.sum() / (B * batch.shape[1])),
            "kl_per_frame": float(out.kl.sum() / (B * batch.shape[1])),
            "sweeps": out.posterior.sweeps,
            "occupancy": out.posterior.gamma.sum((0, 1)).detach().cpu().numpy(),
        })


def _pretrain_frames(
    model: SLDSSVAE,
    data: torch.Tensor,
    steps: int,
    *,
    lr: float,
    batch: int,
    gen: torch.Generator,
) -> None:
    """Train encoder and decoder as a frame-by-frame VAE with a standard normal prior."""
    frames = data.reshape(-1, data.shape[-1])
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, frames.shape[0], (min(batch, frames.shape[0]),), generator=gen,
                            device=gen.device)
        x = frames[idx.cpu()].to(model.device)
        R, r = model.pose_potentials(x)
        m = r / R
        noise = torch.randn(m.shape, generator=gen, dtype=m.dtype, device=gen.device)
        z = m + noise / R.sqrt()
        kl = 0.5 * (m**2 + 1.0 / R - 1.0 + torch.log(R)).sum(-1)
        loss = (kl - model.pose_log_likelihood(z, x)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()


def _random_mask(
    B: int, T: int, fraction: float, rng: np.random.Generator, device: torch.device
) -> torch.Tensor:
    """(B, T) bool: in about ``fraction`` of the rows, one window of T/8 frames is masked."""
    mask = torch.zeros(B, T, dtype=torch.bool)
    width = max(1, T // 8)
    for b in np.flatnonzero(rng.random(B) < fraction):
        s = int(rng.integers(1, max(2, T - width)))
        mask[b, s : s + width] = True
    return mask.to(device)


# ----------------------------------------------------------------------------------------------
# Stage B: sticky AR(1)-HMM on the smoothed latents


def _smoothed_latents(
    model: SLDSSVAE, data: torch.Tensor, chunk: int = 256
) -> tuple[torch.Tensor, TransitionMoments]:
    """Posterior means (N, T, D) and transition moments of x for every subsequence (CPU)."""
    means, prev, cross, nxt = [], [], [], []
    ex = model.expectations()
    with torch.no_grad():
        for i in range(0, data.shape[0], chunk):
            R, r = model.recognize(data[i : i + chunk].to(model.device))
            post = local_posterior(R, r, ex, max_sweeps=1)
            mom = transition_moments(post.kalman)
            means.append(post.kalman.mean.cpu())
            prev.append(mom.Eprev.cpu())
            cross.append(mom.Ecross.cpu())
            nxt.append(mom.Enext.cpu())
    return torch.cat(means), TransitionMoments(torch.cat(prev), torch.cat(cross), torch.cat(nxt))


def _moment_stats(gamma: torch.Tensor, mom: TransitionMoments) -> MNIWStats:
    """MNIW statistics from full posterior moments (with their uncertainty), weighted by γ."""
    K = gamma.shape[-1]
    wk = gamma[:, 1:].reshape(-1, K).T  # (K, N·(T-1))

    def weigh(m: torch.Tensor) -> torch.Tensor:
        return (wk @ m.reshape(wk.shape[1], -1)).reshape(K, *m.shape[-2:])

    return MNIWStats(weigh(mom.Eprev), weigh(mom.Ecross).transpose(-1, -2), weigh(mom.Enext),
                     gamma[:, 1:].sum((0, 1)))


def _ar_loglik(X: torch.Tensor, A: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """(N, T, K) log N(x_t | A_k [x_{t-1}; 1], Q_k) for t ≥ 1, and 0 at t = 0."""
    N, T, D = X.shape
    prev = torch.cat([X[:, :-1], torch.ones(N, T - 1, 1, dtype=X.dtype, device=X.device)], -1)
    pred = torch.einsum("kij,ntj->ntki", A, prev)
    resid = X[:, 1:, None, :] - pred  # (N, T-1, K, D)
    chol = torch.linalg.cholesky(Q)
    z = torch.linalg.solve_triangular(chol, resid.unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    ll = -0.5 * (z**2).sum(-1) - 0.5 * logdet - 0.5 * D * math.log(2 * math.pi)
    return torch.cat([torch.zeros(N, 1, A.shape[0], dtype=X.dtype, device=X.device), ll], 1)


def _weighted_regression(
    X: torch.Tensor, w: torch.Tensor, prior: SLDSParams
) -> tuple[torch.Tensor, torch.Tensor, MNIWStats]:
    """MAP (A_k, Q_k) under the MNIW prior from weights w (N, T, K); also the raw statistics."""
    N, T, D = X.shape
    prev = torch.cat([X[:, :-1], torch.ones(N, T - 1, 1, dtype=X.dtype, device=X.device)], -1)
    nxt = X[:, 1:]
    wn = w[:, 1:]
    K = w.shape[-1]
    # (K, N·T) @ (N·T, p·q) products: a three-operand einsum could build an (N, T, K, p, q)
    # intermediate, gigabytes at 30 minutes of video.
    wk = wn.reshape(-1, K).T

    def moment(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        outer = (a.unsqueeze(-1) * b.unsqueeze(-2)).reshape(-1, a.shape[-1] * b.shape[-1])
        return (wk @ outer).reshape(K, a.shape[-1], b.shape[-1])

    Sxx = moment(prev, prev)
    Sxy = moment(prev, nxt)
    Syy = moment(nxt, nxt)
    n = wn.sum((0, 1))
    eta = prior.dynamics
    Vinv = eta.Vinv + Sxx
    Mt = torch.linalg.solve(Vinv, eta.VinvMt + Sxy)
    S = eta.S_plus + Syy - (eta.VinvMt + Sxy).transpose(-1, -2) @ Mt
    Q = 0.5 * (S + S.transpose(-1, -2)) / (eta.nu + n + D + 1)[:, None, None]
    Q = Q + 1e-6 * torch.eye(D, dtype=X.dtype, device=X.device)
    return Mt.transpose(-1, -2), Q, MNIWStats(Sxx, Sxy, Syy, n)


def _regression_loglik(st: MNIWStats, ridge: float = 1e-3) -> torch.Tensor:
    """(…) maximised Gaussian log-likelihood of the regressions summarised by ``st``."""
    D = st.Syy.shape[-1]
    p = st.Sxx.shape[-1]
    Sxx = st.Sxx + ridge * torch.eye(p, dtype=st.Sxx.dtype)
    resid = st.Syy - st.Sxy.transpose(-1, -2) @ torch.linalg.solve(Sxx, st.Sxy)
    n = st.n.clamp_min(1e-9)
    Q = 0.5 * (resid + resid.transpose(-1, -2)) / n[..., None, None]
    Q = Q + 1e-6 * torch.eye(D, dtype=Q.dtype)
    return -0.5 * n * (torch.logdet(Q) + D * (1.0 + math.log(2 * math.pi)))


def _sticky_log_trans(active: torch.Tensor, dwell: float) -> torch.Tensor:
    """(K, K) fixed sticky log transition matrix over the active states."""
    K = active.shape[0]
    n_act = int(active.sum())
    stay = 1.0 - 1.0 / dwell
    off = (1.0 - stay) / max(n_act - 1, 1)
    mat = torch.where(active[None, :], torch.full((K, K), off, dtype=torch.float64),
                      torch.full((K, K), 1e-30, dtype=torch.float64))
    mat.fill_diagonal_(stay)
    return torch.log(mat)


def fit_arhmm(
    X: torch.Tensor,
    prior: SLDSParams,
    *,
    iters: int,
    seed: int,
    dwell_frames: float = 12.0,
    merge_penalty: float = 1.0,
    min_states: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, SLDSStats, torch.Tensor]:
    """Sticky AR(1)-HMM on latent means X (N, T, D) by EM, with BIC-guided state merging.

    k-means on [x̄_t, Δx̄_t] starts K states; EM alternates forward–backward and weighted
    regressions. The transition matrix is held at a fixed sticky matrix (mean dwell
    ``dwell_frames``): learnt transitions would reinforce whatever flicker k-means starts with.
    Between EM rounds, the two states whose merged regression loses the least log-likelihood
    are merged while that loss is below ``merge_penalty`` × the BIC cost of a state, so the
    data decide how many of the K states are used (never fewer than ``min_states``).

    Returns (gamma (N, T, K), pair counts (K, K), statistics, active (K,) bool).
    """
    N, T, D = X.shape
    K = prior.trans.shape[0]
    flat = X.reshape(-1, D)
    vel = torch.cat([torch.zeros(N, 1, D, dtype=X.dtype), X[:, 1:] - X[:, :-1]], 1).reshape(-1, D)
    feats = torch.cat([flat / flat.std(0).clamp_min(1e-6), vel / vel.std(0).clamp_min(1e-6)], 1)
    rng = np.random.default_rng(seed)
    take = rng.choice(feats.shape[0], size=min(feats.shape[0], 20000), replace=False)
    km = KMeans(n_clusters=K, n_init=2, random_state=seed).fit(feats[take].numpy())
    labels = torch.as_tensor(km.predict(feats.numpy()), dtype=torch.long).reshape(N, T)
    gamma = torch.nn.functional.one_hot(labels, K).to(X.dtype)
    active = gamma.sum((0, 1)) > 0
    n_params = D * (D + 1) + D * (D + 1) // 2
    penalty = merge_penalty * 0.5 * n_params * math.log(max(N * T, 2))

    def em(gamma: torch.Tensor, rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
        log_trans = _sticky_log_trans(active, dwell_frames)
        pair = torch.zeros(K, K, dtype=X.dtype)
        for _ in range(rounds):
            A, Q, _ = _weighted_regression(X, gamma, prior)
            init = gamma[:, 0].sum(0) + 1e-3
            log_pi0 = torch.log(init / init.sum())
            ll = _ar_loglik(X, A, Q)
            ll = torch.where(active, ll, torch.full_like(ll, -1e6))
            res = forward_backward(log_pi0, log_trans, ll)
            gamma, pair = res.gamma, res.pair_counts.sum(0)
        return gamma, pair

    gamma, pair = em(gamma, iters)
    for _ in range(8):
        merged = False
        while int(active.sum()) > max(1, min_states):
            _, _, st = _weighted_regression(X, gamma, prior)
            ll = _regression_loglik(st)
            idx = torch.nonzero(active).squeeze(1)
            i, j = torch.meshgrid(idx, idx, indexing="ij")
            keep = i < j
            i, j = i[keep], j[keep]
            both = MNIWStats(*(a[i] + a[j] for a in st))
            cost = ll[i] + ll[j] - _regression_loglik(both)
            # States too small to estimate a regression are merged regardless of the penalty.
            tiny = torch.minimum(st.n[i], st.n[j]) < 2 * n_params
            cost = torch.where(tiny, torch.full_like(cost, -1.0), cost)
            best = int(torch.argmin(cost))
            if float(cost[best]) >= penalty:
                break
            a_, b_ = int(i[best]), int(j[best])
            gamma[..., a_] += gamma[..., b_]
            gamma[..., b_] = 0.0
            active[b_] = False
            merged = True
        if not merged:
            break
        gamma, pair = em(gamma, max(2, iters // 3))
    _, _, dyn = _weighted_regression(X, gamma, prior)
    x1 = X[:, 0]
    one = torch.ones((), dtype=X.dtype)
    ini = MNIWStats(N * one.view(1, 1), x1.sum(0)[None], x1.T @ x1, N * one)
    return gamma, pair, SLDSStats(gamma[:, 0].sum(0), pair, dyn, ini), active


def _gauss_loglik(F: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """(M, K) log N(F_m | mean_k, cov_k) for F (M, d), mean (K, d), cov (K, d, d)."""
    chol = torch.linalg.cholesky(cov)
    resid = (F[None] - mean[:, None]).transpose(-1, -2)  # (K, d, M)
    z = torch.linalg.solve_triangular(chol, resid, upper=False)
    logdet = 2 * torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    d = F.shape[-1]
    return (-0.5 * (z**2).sum(1) - 0.5 * (logdet + d * math.log(2 * math.pi))[:, None]).T


def _gauss_moments(
    F: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted counts (K,), sums (K, d) and sums of outer products (K, d, d)."""
    return w.sum(0), w.T @ F, torch.einsum("mk,mi,mj->kij", w, F, F)


def _gauss_from_moments(
    n: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, ridge: float
) -> tuple[torch.Tensor, ...]:
    """Means (K, d), covariances (K, d, d) and counts (K,) from :func:`_gauss_moments`."""
    n_ = n.clamp_min(1e-9)
    mean = s1 / n_[:, None]
    cov = s2 / n_[:, None, None] - mean[:, :, None] * mean[:, None, :]
    eye = torch.eye(s1.shape[-1], dtype=s1.dtype)
    return mean, 0.5 * (cov + cov.transpose(-1, -2)) + ridge * eye, n


def _gauss_fit(F: torch.Tensor, w: torch.Tensor, ridge: float) -> tuple[torch.Tensor, ...]:
    """Weighted means (K, d), covariances (K, d, d) and weights (K,) from F (M, d), w (M, K)."""
    return _gauss_from_moments(*_gauss_moments(F, w), ridge)


def fit_sticky_ghmm(
    X: torch.Tensor,
    states: int,
    *,
    start_states: int = 16,
    iters: int = 12,
    seed: int = 0,
    dwell_frames: float = 12.0,
    merge_penalty: float = 3.0,
    min_states: int = 1,
    velocity_weight: float = 0.0,
    scale: str = "dim",
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sticky Gaussian HMM on where the latent is and where it is heading, by EM.

    Features per frame are the standardised latent mean and its velocity (scaled by
    ``velocity_weight``): a syllable is a region of pose-and-kinematics space the mouse stays
    in for a while, plus the direction it moves through it. k-means starts ``start_states``
    states; between EM rounds, the pair of states whose merged Gaussian loses the least
    log-likelihood is merged while that loss is below ``merge_penalty`` × the BIC cost of a
    state (never below ``min_states``), so the data decide how many states are used.
    ``scale`` "dim" standardises each latent dimension, "global" divides all by one overall
    spread; ``extra`` (N, T, E) features, already scaled, are appended as they are.

    Returns (gamma (N, T, states), pair counts (states, states), active (states,) bool).
    """
    N, T, D = X.shape
    K = states
    if scale not in ("dim", "global"):
        raise ValueError(f"scale must be 'dim' or 'global', got {scale!r}")
    flat = X.reshape(-1, D)
    sd = flat.std(0) if scale == "dim" else flat.std(0).square().mean().sqrt().expand(D)
    parts = [(flat - flat.mean(0)) / sd.clamp_min(1e-6)]
    # Velocity columns only when they weigh: zero columns would still count in every state's
    # BIC cost and so merge states too eagerly (ARI 0.608 -> 0.640 and 0.632 -> 0.642 on two
    # synthetic sets when they went).
    if velocity_weight > 0:
        vel = torch.cat([torch.zeros(N, 1, D, dtype=X.dtype), X[:, 1:] - X[:, :-1]], 1)
        fvel = vel.reshape(-1, D)
        parts.append(velocity_weight * fvel / fvel.std(0).clamp_min(1e-6))
    F = torch.cat(parts, 1)
    if extra is not None:
        F = torch.cat([F, extra.reshape(N * T, -1).to(F.dtype)], 1)
    d = F.shape[1]
    rng = np.random.default_rng(seed)
    take = rng.choice(F.shape[0], size=min(F.shape[0], 20000), replace=False)
    k0 = min(start_states, K)
    km = KMeans(n_clusters=k0, n_init=2, random_state=seed).fit(F[take].numpy())
    labels = torch.as_tensor(km.predict(F.numpy()), dtype=torch.long)
    w = torch.nn.functional.one_hot(labels, K).to(X.dtype)
    active = w.sum(0) > 0
    ridge = 1e-3
    n_params = d + d * (d + 1) // 2
    penalty = merge_penalty * 0.5 * n_params * math.log(max(N * T, 2))
    pair = torch.zeros(K, K, dtype=X.dtype)

    def em(w: torch.Tensor, rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
        log_trans = _sticky_log_trans(active, dwell_frames)
        pair = torch.zeros(K, K, dtype=X.dtype)
        for _ in range(rounds):
            mean, cov, _ = _gauss_fit(F, w, ridge)
            cov = torch.where(active[:, None, None], cov, torch.eye(d, dtype=X.dtype))
            ll = _gauss_loglik(F, mean, cov).reshape(N, T, K)
            ll = torch.where(active, ll, torch.full_like(ll, -1e6))
            init = (w.reshape(N, T, K)[:, 0].sum(0) + 1e-3) * active
            res = forward_backward(torch.log(init / init.sum() + 1e-30), log_trans, ll)
            w, pair = res.gamma.reshape(-1, K), res.pair_counts.sum(0)
        return w, pair

    def loglik(mean_cov_n: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, cov, n = mean_cov_n
        return -0.5 * n * (torch.logdet(cov) + d * (1.0 + math.log(2 * math.pi)))

    w, pair = em(w, iters)
    for _ in range(16):
        merged = False
        while int(active.sum()) > max(1, min_states):
            idx = torch.nonzero(active).squeeze(1)
            # A merged state's statistics are the sums of its parts': every pair is scored
            # from the per-state moments, without another pass over the frames.
            n, s1, s2 = _gauss_moments(F, w)
            own = loglik(_gauss_from_moments(n, s1, s2, ridge))
            ii, jj = torch.meshgrid(idx, idx, indexing="ij")
            upper = ii < jj
            i_, j_ = ii[upper], jj[upper]
            both = _gauss_from_moments(n[i_] + n[j_], s1[i_] + s1[j_], s2[i_] + s2[j_], ridge)
            costs = own[i_] + own[j_] - loglik(both)
            costs = torch.where(torch.minimum(n[i_], n[j_]) < 2 * n_params,
                                torch.full_like(costs, -1.0), costs)
            best, best_cost = None, math.inf
            if costs.numel():
                k = int(torch.argmin(costs))
                best, best_cost = (int(i_[k]), int(j_[k])), float(costs[k])
            if best is None or best_cost >= penalty:
                break
            i, j = best
            w[:, i] += w[:, j]
            w[:, j] = 0.0
            active[j] = False
            merged = True
        if not merged:
            break
        w, pair = em(w, max(2, iters // 3))
    return w.reshape(N, T, K), pair, active


def _with_beta(prior: SLDSParams, beta: torch.Tensor, dwell: float) -> SLDSParams:
    """Sticky transition prior whose off-diagonal mass in row i follows β_j (j ≠ i)."""
    K = beta.shape[0]
    strength = prior.trans.sum(-1, keepdim=True)  # keep each row's pseudo-count total
    off = beta[None, :].expand(K, K).clone()
    off.fill_diagonal_(0.0)
    off = off / off.sum(-1, keepdim=True).clamp_min(1e-30) * (1.0 / dwell)
    mean = off + torch.eye(K, dtype=off.dtype) * (1.0 - 1.0 / dwell)
    return SLDSParams(prior.init, strength * mean, prior.dynamics, prior.initial)


def _capped(stats: SLDSStats, cap: float) -> SLDSStats:
    """Scale each state's statistics so that no state carries more than ``cap`` pseudo-counts."""
    n = stats.dynamics.n
    f = torch.clamp(cap / n.clamp_min(1e-9), max=1.0)
    d = stats.dynamics
    dyn = MNIWStats(d.Sxx * f[:, None, None], d.Sxy * f[:, None, None],
                    d.Syy * f[:, None, None], d.n * f)
    row = stats.trans_counts.sum(-1)
    fr = torch.clamp(cap / row.clamp_min(1e-9), max=1.0)
    ini = stats.initial
    fi = min(1.0, cap / float(ini.n))
    return SLDSStats(
        stats.init_counts * fi,
        stats.trans_counts * fr[:, None],
        dyn,
        MNIWStats(*(x * fi for x in ini)),
    )


# ----------------------------------------------------------------------------------------------
# Relabelling and summaries


# Dirichlet pseudo-count of a switched-off state: E[log π] = ψ(1e-8) ≈ -1e8, finite.
_OFF = 1e-8


def _permute(params: SLDSParams, perm: torch.Tensor) -> SLDSParams:
    """Reorder states: new state i is old state perm[i]."""
    return SLDSParams(
        params.init[perm],
        params.trans[perm][:, perm],
        MNIW(*(x[perm] for x in params.dynamics)),
        params.initial,
    )


def _segment_sessions(model: SLDSSVAE, tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """Per-frame syllables of each session, as :func:`model.segment.segment_frames` gives."""
    out = []
    with torch.no_grad():
        ex = model.expectations()
        for x in tensors:
            R, r = model.recognize(x.to(model.device))
            g_t, lab_t = infer_chunked(R, r, ex)
            out.append(merge_short_bouts(lab_t.cpu().numpy(), g_t.cpu().numpy(),
                                         DEFAULT_MIN_BOUT))
    return out


def _short_lived_states(
    labels: list[np.ndarray], states: int, min_bout: float, min_states: int
) -> list[int]:
    """States whose median bout is under ``min_bout`` frames, shortest first, leaving at least
    ``min_states`` in use (a share of frames above 1/(2·states), as the fit summary counts)."""
    if min_bout <= 0:
        return []
    bouts: list[list[int]] = [[] for _ in range(states)]
    for lab in labels:
        for start, end, state in bouts_from_labels(lab):
            bouts[state].append(end - start)
    total = max(sum(sum(b) for b in bouts), 1)
    in_use = {k for k, b in enumerate(bouts) if sum(b) / total > 1.0 / (2 * states)}
    med = {k: float(np.median(b)) for k, b in enumerate(bouts) if b}
    spare = len(in_use) - max(1, min_states)
    picked = []
    for k in sorted((k for k, m in med.items() if m < min_bout), key=lambda k: med[k]):
        # A state too small to count as in use goes whatever the floor; one in use only while
        # enough others stay.
        if k in in_use:
            if spare <= 0:
                continue
            spare -= 1
        picked.append(k)
    return picked


def _switch_off(params: SLDSParams, states: list[int]) -> SLDSParams:
    """q(θ) (or the prior) in which the given states are never entered nor started in."""
    init, trans = params.init.clone(), params.trans.clone()
    init[states] = _OFF
    trans[:, states] = _OFF
    return SLDSParams(init, trans, params.dynamics, params.initial)


def fit_model(
    sessions: list[np.ndarray],
    kinematics: list[np.ndarray] | None = None,
    *,
    states: int = 40,
    latent_dim: int = 10,
    epochs: int | None = None,
    seed: int = 0,
    fps: float = 30.0,
    progress: ProgressFn | None = None,
    device: str | None = None,
    settings: TrainSettings | None = None,
    polarities: list[str] | None = None,
    kin_recipe: int = KINEMATICS_RECIPE,
) -> FittedModel:
    """Fit an SLDS-SVAE to preprocessed sessions, each (T_i, H, W) float32 in [0, 1], with
    each session's kinematics (T_i, F) from :func:`model.kinematics.from_scalars` if given,
    and each session's polarity ("dark" or "bright", ``Features.polarity``) if given: when the
    sessions include both, encoder and decoder are told it (``TrainSettings.polarity_input``).
    kin_recipe: how the kinematics were made (``Features.kinematics(recipe)``), kept in the
    model so that segmenting makes them the same way.

    epochs: passes over the data in each of stages A and C; None picks a number that keeps the
    fit of 30 minutes of video well under 15 minutes on a 2-core CPU.
    progress(fraction, message, metrics) is called a few times per epoch.
    """
    settings = settings or TrainSettings()
    if not sessions:
        raise ValueError("fit_model needs at least one session")
    H, W = sessions[0].shape[1:]
    if any(s.ndim != 3 or s.shape[1:] != (H, W) for s in sessions):
        raise ValueError("all sessions must be (T, H, W) arrays with the same crop size")
    t_start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = default_device(device)
    if dev.type != "cpu":
        gen = torch.Generator(device=dev).manual_seed(seed)
    h, w = input_size(H, W, settings.max_side)
    n_frames = sum(s.shape[0] for s in sessions)
    kin_fields: dict[str, Any] = {}
    if kinematics is not None:
        if len(kinematics) != len(sessions):
            raise ValueError("give one kinematics array per session")
        for s, k in zip(sessions, kinematics, strict=True):
            if np.ndim(k) != 2 or len(k) != len(s):
                raise ValueError("each session's kinematics must be (T, F) for its T frames")
        mean, std = kin_standardizer(kinematics)
        kin_fields = dict(kinematics=len(mean), kin_mean=mean, kin_std=std,
                          kin_weight=settings.kin_weight, kin_in_state=settings.kin_in_state,
                          kin_noise=settings.kin_noise, kin_recipe=kin_recipe)
    if polarities is not None and len(polarities) != len(sessions):
        raise ValueError("give one polarity per session")
    mixed = polarities is not None and len(set(polarities)) > 1
    config = SVAEConfig(states=states, latent_dim=latent_dim, height=h, width=w, fps=fps,
                        hidden=settings.hidden, polarity_input=settings.polarity_input and mixed,
                        trans_strength=settings.trans_strength * max(n_frames / states, 1.0),
                        **kin_fields)
    tensors = [
        observations(s, None if kinematics is None else kinematics[i], config,
                     None if polarities is None else polarities[i])
        for i, s in enumerate(sessions)
    ]
    data = _subsequences(tensors, settings.seq_len)
    n_seq = data.shape[0]
    B = min(settings.batch, n_seq)
    per_epoch = max(1, math.ceil(n_seq / B))
    if epochs is None:
        # About 400 steps per stage at 30 min of video (~0.35 s and ~0.5 s each on one CPU
        # core); at least 4 and at most 60 passes over smaller data sets.
        steps_c = settings.steps_c or int(np.clip(400, 4 * per_epoch, 60 * per_epoch))
        steps_a = settings.steps_a or int(np.clip(400, 4 * per_epoch, 60 * per_epoch))
    else:
        steps_c = settings.steps_c or max(1, epochs * per_epoch)
        steps_a = settings.steps_a or max(1, epochs * per_epoch)
    total = steps_a + steps_c
    history: list[dict[str, Any]] = []

    def report(fraction: float, message: str, metrics: dict[str, Any]) -> None:
        if progress:
            progress(min(max(fraction, 0.0), 1.0), message, metrics)

    # Stage A: K = 1.
    cfg_a = SVAEConfig(**{**config.to_dict(), "states": 1})
    model_a = SLDSSVAE(cfg_a).to_device(dev)

    def on_step_a(step: int, m: dict) -> None:
        if step % max(1, per_epoch // 2) == 0 or step == steps_a - 1:
            metrics = {"stage": "A", "step": step, "elbo_per_frame": m["elbo_per_frame"]}
            history.append(metrics)
            report(0.9 * (step + 1) / total, f"stage A (1 state): step {step + 1}/{steps_a}",
                   metrics)

    if settings.pretrain_passes > 0:
        frames_seen = settings.pretrain_passes * data.shape[0] * data.shape[1]
        steps_p = int(np.clip(frames_seen / settings.pretrain_batch, 200, 1000))
        _pretrain_frames(model_a, data, steps_p, lr=settings.lr_a,
                         batch=settings.pretrain_batch, gen=gen)
    _run_steps(model_a, data, steps_a, settings, rng=rng, gen=gen, rho_base=0.3,
               lr=settings.lr_a, sweeps=1,
               kl_warmup=max(1, steps_a // 3), cache=None, masking=False, on_step=on_step_a)

    # Stage B: AR-HMM on the smoothed latents.
    report(0.9 * steps_a / total, "stage B: fitting an AR-HMM to initialise the states", {})
    X, moments = _smoothed_latents(model_a, data)
    model = SLDSSVAE(config)
    prior_cpu = model.prior
    if settings.stage_b == "gaussian":
        gamma0, pair0, active = fit_sticky_ghmm(
            X, states, start_states=settings.start_states,
            iters=settings.em_iters, seed=seed,
            dwell_frames=config.dwell_frames, merge_penalty=settings.merge_penalty,
            min_states=settings.min_states, velocity_weight=settings.velocity_weight,
            scale=settings.stage_b_scale,
            extra=(settings.stage_b_kinematics
                   * data[..., config.pixels : config.pixels + config.kinematics]
                   if settings.stage_b_kinematics > 0 and config.kinematics
                   and not config.kin_in_state else None),
        )
        x1 = X[:, 0]
        one = torch.ones((), dtype=X.dtype)
        stats = SLDSStats(gamma0[:, 0].sum(0), pair0, _moment_stats(gamma0, moments),
                          MNIWStats(X.shape[0] * one.view(1, 1), x1.sum(0)[None], x1.T @ x1,
                                    X.shape[0] * one))
    else:
        gamma0, _, stats, active = fit_arhmm(
            X, prior_cpu, iters=settings.em_iters, seed=seed, dwell_frames=config.dwell_frames,
            merge_penalty=settings.merge_penalty, min_states=settings.min_states,
        )
    # The AR-HMM segments the posterior means, but q(θ) must be built from the full posterior
    # moments: regressions on means alone give noise covariances Q_k smaller than the
    # uncertainty of q(x), and then, in stage C, E[log p(x_t | x_{t-1}, k)] punishes every
    # state by tr(Q_k⁻¹ Cov) and the state with the largest Q takes all frames.
    stats = stats._replace(dynamics=_moment_stats(gamma0, moments))
    # Empirical-Bayes (weak-limit HDP style) transition prior: entering state j is a priori as
    # likely as j's share β_j of stage B's frames, so states that stage B left unused stay off
    # unless the data insist.
    beta = gamma0.sum((0, 1)) / gamma0.sum()
    beta = torch.where(active, beta.clamp_min(1e-3 / states), torch.full_like(beta, 1e-4 / states))
    prior_cpu = _with_beta(prior_cpu, beta, config.dwell_frames)
    model.prior = prior_cpu
    capped = _capped(stats, settings.pseudo_count_cap)
    model.params = SLDSParams(
        prior_cpu.init + capped.init_counts,
        prior_cpu.trans + capped.trans_counts,
        MNIW(*(p + s for p, s in zip(prior_cpu.dynamics, capped.dynamics, strict=True))),
        MNIW(*(p + s for p, s in zip(prior_cpu.initial, capped.initial, strict=True))),
    )
    model.encoder.load_state_dict(model_a.encoder.state_dict())
    model.decoder.load_state_dict(model_a.decoder.state_dict())
    model.to_device(dev)
    del model_a, moments
    cache = gamma0.to(torch.float32)

    # Stage C: the full SLDS-SVAE.
    occupancy = np.zeros(states)

    def on_step_c(step: int, m: dict) -> None:
        nonlocal occupancy
        occupancy = 0.95 * occupancy + m["occupancy"]
        if step % max(1, per_epoch // 2) == 0 or step == steps_c - 1:
            share = occupancy / max(occupancy.sum(), 1e-12)
            metrics = {
                "stage": "C", "step": step, "elbo_per_frame": m["elbo_per_frame"],
                "kl_per_frame": m["kl_per_frame"], "sweeps": m["sweeps"],
                "states_used": int((share > 1.0 / (2 * states)).sum()),
            }
            history.append(metrics)
            report(0.9 * (steps_a + step + 1) / total,
                   f"stage C ({states} states): step {step + 1}/{steps_c}", metrics)

    _run_steps(model, data, steps_c, settings, rng=rng, gen=gen, rho_base=settings.rho_c,
               lr=settings.lr, sweeps=settings.sweeps, kl_warmup=0, cache=cache,
               masking=settings.mask_fraction > 0,
               on_step=on_step_c)

    # Final pass: segment the training sessions, renumber states by usage, measure.
    report(0.92, "segmenting the training sessions", {})
    model.eval()
    labels_all = _segment_sessions(model, tensors)
    # States whose bouts are mostly shorter than a syllable mark the passage between two
    # movements: they are switched off and the sessions segmented again without them.
    min_bout = settings.min_bout_s * fps
    dropped: list[int] = []
    for _ in range(2):
        short = _short_lived_states(labels_all, states, min_bout, settings.min_states)
        if not short:
            break
        model.params = _switch_off(model.params, short)
        model.prior = _switch_off(model.prior, short)
        dropped += short
        labels_all = _segment_sessions(model, tensors)
    usage = np.zeros(states)
    for lab in labels_all:
        usage += np.bincount(lab, minlength=states)
    perm = np.argsort(-usage, kind="stable")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(states)
    perm_t = torch.as_tensor(perm, device=dev)
    model.params = _permute(model.params, perm_t)
    model.prior = _permute(model.prior, perm_t)  # the β-weighted prior is per state too
    labels_all = [inv[lab] for lab in labels_all]
    share = usage[perm] / max(usage.sum(), 1)
    durations = [
        float(np.median(bout_lengths(lab))) for lab in labels_all if lab.size
    ]
    all_bouts = np.concatenate([bout_lengths(lab) for lab in labels_all])
    median_frames = float(np.median(all_bouts)) if all_bouts.size else 0.0
    summary = {
        "states_used": int((share > 1.0 / (2 * states)).sum()),
        "usage": [round(float(u), 6) for u in share],
        "median_duration_frames": median_frames,
        "median_duration_ms": 1000.0 * median_frames / fps,
        "session_median_durations_frames": durations,
        "frames": int(sum(x.shape[0] for x in tensors)),
        "steps_a": steps_a,
        "steps_c": steps_c,
        "short_lived_states_dropped": len(dropped),
        "fit_seconds": round(time.perf_counter() - t_start, 2),
        "device": str(dev),
        "seed": seed,
        "history": history[-50:],
    }
    model.params = params_to(model.params, dev)
    fitted = FittedModel(config, model, summary)
    report(1.0, "done", {k: summary[k] for k in ("states_used", "median_duration_ms")})
    return fitted


def fit_features(
    features: list[Features],
    *,
    progress: ProgressFn | None = None,
    **kwargs: Any,
) -> FittedModel:
    """Fit a model to preprocessed sessions the way every caller must: one frame rate for the
    model's dynamics (:func:`model.rate.model_rate`; sessions filmed at another are shown to it
    resampled), kinematics by the current recipe, each session's polarity, and the crop framing
    recorded so that the model only ever segments sessions framed the same way. ``kwargs`` go
    to :func:`fit_model` (states, epochs, seed, settings, ...)."""
    from model.features import framing
    from model.rate import at_rate, model_rate

    if not features:
        raise ValueError("fit_features needs at least one session")
    framings = {framing(f.summary) for f in features}
    if len(framings) > 1:
        raise ValueError(
            f"the sessions' crops are framed by different versions of preprocessing "
            f"({sorted(framings)}): preprocess the older sessions again before fitting"
        )
    fps = model_rate([f.fps for f in features])
    shown = [at_rate(f, fps)[0] for f in features]
    fitted = fit_model(
        [f.crops_float() for f in shown],
        [f.kinematics() for f in shown],
        fps=fps,
        progress=progress,
        polarities=[f.polarity for f in shown],
        **kwargs,
    )
    fitted.summary["crop_framing"] = framings.pop()
    return fitted
