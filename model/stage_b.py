"""Stage B of a fit: the first segmentation into states, on stage A's smoothed latents.

A sticky Gaussian HMM on the latent means (plus, optionally, their velocity and the
kinematics), fitted by EM from a k-means start; pairs of states are merged while the merged
Gaussian loses less log-likelihood than a state's BIC cost, so the data decide how many of the
allowed states are used. Its states and the full posterior moments of the latents give stage C
its starting q(θ) (:func:`moment_stats`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from sklearn.cluster import KMeans

from model.hmm import forward_backward
from model.kalman import KalmanResult
from model.priors import MNIWStats
from model.svae import SLDSSVAE, local_posterior, transition_moments
from model.training_data import as_float


def _posteriors(
    model: SLDSSVAE, data: torch.Tensor, chunk: int
) -> Iterator[tuple[int, KalmanResult]]:
    """q(x) of every subsequence under one state's dynamics, ``chunk`` subsequences at a time."""
    ex = model.expectations()
    with torch.no_grad():
        for i in range(0, data.shape[0], chunk):
            R, r = model.recognize(as_float(data[i : i + chunk], model.device))
            yield i, local_posterior(R, r, ex, max_sweeps=1).kalman


def smoothed_latents(model: SLDSSVAE, data: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Posterior means (N, T, D) of x for every subsequence (CPU)."""
    return torch.cat([kal.mean.cpu() for _, kal in _posteriors(model, data, chunk)])


def moment_stats(
    model: SLDSSVAE, data: torch.Tensor, gamma: torch.Tensor, chunk: int = 256
) -> MNIWStats:
    """MNIW statistics from full posterior moments (with their uncertainty), weighted by γ
    (N, T, K). The moments are made again chunk by chunk (the same deterministic pass as
    :func:`smoothed_latents`) and summed, never kept: (D+1)² numbers per frame three times
    over would be the largest thing in memory on hours of video."""
    K = gamma.shape[-1]
    sums: list[torch.Tensor] | None = None
    for i, kal in _posteriors(model, data, chunk):
        mom = transition_moments(kal)
        wk = gamma[i : i + chunk, 1:].reshape(-1, K).T.to(mom.Eprev)  # (K, n·(T-1))

        def weigh(m: torch.Tensor, wk: torch.Tensor = wk) -> torch.Tensor:
            return (wk @ m.reshape(wk.shape[1], -1)).reshape(K, *m.shape[-2:]).cpu()

        part = [weigh(mom.Eprev), weigh(mom.Ecross), weigh(mom.Enext)]
        sums = part if sums is None else [a + b for a, b in zip(sums, part, strict=True)]
    assert sums is not None
    return MNIWStats(sums[0], sums[1].transpose(-1, -2), sums[2], gamma[:, 1:].sum((0, 1)))


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


# Frames per piece in the per-frame steps below: their temporaries are (K, d) or (K, K) per
# frame (about 6 KB at 40 states), which over all frames of hours of video would be gigabytes.
_ROWS = 8192
_SEQS = 1024  # subsequences per forward-backward pass


def _gauss_loglik(F: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """(M, K) log N(F_m | mean_k, cov_k) for F (M, d), mean (K, d), cov (K, d, d)."""
    chol = torch.linalg.cholesky(cov)
    logdet = 2 * torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    const = 0.5 * (logdet + F.shape[-1] * math.log(2 * math.pi))
    out = F.new_empty(F.shape[0], mean.shape[0])
    for i in range(0, F.shape[0], _ROWS):
        resid = (F[None, i : i + _ROWS] - mean[:, None]).transpose(-1, -2)  # (K, d, rows)
        z = torch.linalg.solve_triangular(chol, resid, upper=False)
        out[i : i + _ROWS] = (-0.5 * (z**2).sum(1) - const[:, None]).T
    return out


def _gauss_moments(
    F: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted counts (K,), sums (K, d) and sums of outer products (K, d, d)."""
    K, d = w.shape[1], F.shape[1]
    s2 = F.new_zeros(K, d, d)
    for i in range(0, F.shape[0], _ROWS):
        f, wi = F[i : i + _ROWS], w[i : i + _ROWS]
        s2 += torch.einsum("mk,mi,mj->kij", wi, f, f)
    return w.sum(0), w.T @ F, s2


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
    evidence_frames: int = 0,
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

    ``evidence_frames`` (0: no cap) caps the evidence the merge test counts: with more frames
    than this, the test weighs each state's frames as if the video had been cut to that
    length. A behaviour is not exactly Gaussian, and the log-likelihood a merge loses grows
    with the frames while the BIC cost grows with their logarithm only: on all frames, hours
    of video would keep apart the lobes of one behaviour that minutes of it merge (synthetic
    latents with 3 lobes per behaviour: 7 states and ARI 0.96 on 17,920 frames, 15 states and
    ARI 0.56 on 108,800). Capped, the number of states is a property of the behaviours, not of
    the amount of video.

    Returns (gamma (N, T, states), pair counts (states, states), active (states,) bool).
    """
    N, T, D = X.shape
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
    # States are only ever merged, never added: the EM works on the k-means start's states
    # alone (the others are embedded, unused, at the end), so that its per-frame arrays are
    # k0, not ``states``, wide.
    K = k0 = min(start_states, states)
    km = KMeans(n_clusters=k0, n_init=2, random_state=seed).fit(F[take].numpy())
    labels = torch.as_tensor(km.predict(F.numpy()), dtype=torch.long)
    w = torch.nn.functional.one_hot(labels, K).to(X.dtype)
    active = w.sum(0) > 0
    ridge = 1e-3
    n_params = d + d * (d + 1) // 2
    frames = N * T if evidence_frames <= 0 else min(N * T, evidence_frames)
    share = frames / (N * T)
    penalty = merge_penalty * 0.5 * n_params * math.log(max(frames, 2))
    pair = torch.zeros(K, K, dtype=X.dtype)

    def em(w: torch.Tensor, rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
        log_trans = _sticky_log_trans(active, dwell_frames)
        pair = torch.zeros(K, K, dtype=X.dtype)
        for _ in range(rounds):
            mean, cov, _ = _gauss_fit(F, w, ridge)
            cov = torch.where(active[:, None, None], cov, torch.eye(d, dtype=X.dtype))
            ll = _gauss_loglik(F, mean, cov).reshape(N, T, K)
            ll.masked_fill_(~active, -1e6)
            init = (w.reshape(N, T, K)[:, 0].sum(0) + 1e-3) * active
            log_init = torch.log(init / init.sum() + 1e-30)
            w = w.reshape(N, T, K)  # filled in place: w's old values are not read again
            pair = torch.zeros(K, K, dtype=X.dtype)
            for i in range(0, N, _SEQS):
                res = forward_backward(log_init, log_trans, ll[i : i + _SEQS])
                w[i : i + _SEQS] = res.gamma
                pair += res.pair_counts.sum(0)
            w = w.reshape(-1, K)
            del ll
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
            costs = share * (own[i_] + own[j_] - loglik(both))
            costs = torch.where(share * torch.minimum(n[i_], n[j_]) < 2 * n_params,
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
    gamma = w.new_zeros(N, T, states)
    gamma[..., :K] = w.reshape(N, T, K)
    pair_all = pair.new_zeros(states, states)
    pair_all[:K, :K] = pair
    return gamma, pair_all, torch.cat([active, active.new_zeros(states - K)])
