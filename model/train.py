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

from model.artifact import FittedModel, default_device
from model.ethogram import bout_lengths, bouts_from_labels
from model.features import Features
from model.kinematics import KINEMATICS_RECIPE
from model.kinematics import standardizer as kin_standardizer
from model.priors import MNIW, MNIWStats, SLDSParams, SLDSStats
from model.segment import DEFAULT_MIN_BOUT, infer_chunked, merge_short_bouts
from model.stage_b import fit_sticky_ghmm, moment_stats, smoothed_latents
from model.svae import (
    SLDSSVAE,
    SVAEConfig,
    input_size,
    params_to,
    sufficient_stats,
)
from model.training_data import as_float, session_observations, subsequences

ProgressFn = Callable[[float, str, dict], None]


@dataclass
class TrainSettings:
    """Knobs of the fit; the defaults target ~15 min for 30 min of video on a 2-core CPU. What
    each default was measured against is in docs/benchmarks.md ("Why the fit's defaults")."""

    seq_len: int = 64
    batch: int = 32
    # Stage C moves the networks and q(θ) gently: larger steps drifted away from the states.
    lr: float = 1e-4
    lr_a: float = 2e-3  # stage A (networks from scratch)
    hidden: int = 200
    warmup_steps: int = 100
    steps_a: int = 0  # 0: derived from the data size (passes, max_steps)
    steps_c: int = 0
    # Steps per stage: this many passes over the subsequences, between 400 steps and
    # max_steps. On 1 h of synthetic video 1,600 steps (30 passes) gave ARI 0.699 where 400
    # (7.6 passes) gave 0.618; the cap keeps 8 h of video within about 40 min on 2 cores.
    passes: float = 30.0
    max_steps: int = 4000
    sweeps: int = 4
    # SVI step size in stage C, decayed as (1 + t/τ)^-0.6; small, so that stage C refines
    # stage B's states rather than replacing them.
    rho_c: float = 0.002
    rho_tau: float = 100.0
    em_iters: int = 12
    merge_penalty: float = 1.0  # × BIC cost of a state, for merging states in stage B
    # Stage B's merge test counts at most this many frames of evidence (10 min at 30 fps), so
    # that hours of video do not keep apart what minutes of it merge (model.stage_b).
    stage_b_evidence_frames: int = 18000
    # Stage B never merges, and ``min_bout_s`` never switches off, below this many states in use
    # (states too small to count as in use go regardless): the BIC test alone merges real
    # behaviour down to 2-3 states.
    min_states: int = 8
    pseudo_count_cap: float = 500.0
    mask_fraction: float = 0.0  # share of subsequences with a masked window in stage C
    max_side: int = 32
    # Transition pseudo-counts per row, as a multiple of the frames per state (K-average).
    trans_strength: float = 10.0
    # Each kinematic number counts as this many pixels in the likelihood (when given): at 256,
    # four kinematics weigh as much as a 32x32 crop; more, and the latents keep too little pose.
    kin_weight: float = 256.0
    start_states: int = 16
    velocity_weight: float = 0.0
    # Stage B scales the latents by one overall spread ("global": dimensions the encoder uses
    # little stay small) or each to unit variance ("dim": noise dimensions weigh as much as
    # informative ones), and appends the standardised kinematics times this weight (0: none).
    stage_b_scale: str = "global"
    stage_b_kinematics: float = 1.0
    # After the fit, states whose median bout is shorter than this (two rounds, never below
    # ``min_states`` in use) are switched off and the sessions segmented again: they are the
    # brief passages between two movements, not syllables. 0: off.
    min_bout_s: float = 0.3
    # Before stage A, encoder and decoder learn frame by frame (a VAE with a standard normal
    # prior) for this many passes over the frames (200-1000 steps; 0: none): from scratch,
    # stage A leaves the body's sideways bend out of the latents and splits rearing by polarity.
    pretrain_passes: float = 30.0
    pretrain_batch: int = 2048
    # The training tensor is kept in float16 once float32 would take more than this (GiB):
    # a fit's memory must not grow past a worker's with hours of video (model.training_data).
    half_above_gib: float = 1.0
    # The kinematics enter the latent state as observed dimensions (SVAEConfig.kin_in_state)
    # rather than through encoder and decoder (``kin_weight`` and ``stage_b_kinematics`` then
    # play no part: stage B sees them in the latents): through the networks, the latents mixed
    # pose with movement.
    kin_in_state: bool = True
    # The kinematics' noise in the state (standardised units): large enough that the Kalman
    # smoother does the smoothing, rather than states following the features' noise.
    kin_noise: float = 0.3
    # When the sessions include both polarities, encoder and decoder are told each one's:
    # otherwise states split by polarity (dark and bright sessions in different syllables).
    polarity_input: bool = True


def default_steps(per_epoch: int, settings: TrainSettings) -> int:
    """Training steps per stage for data of ``per_epoch`` minibatches: ``settings.passes``
    passes, at least 400 steps and at most ``settings.max_steps``, then at least 4 and at most
    60 passes. A fixed 400 steps left fits on more video undertrained (ARI 0.665, 0.618, 0.563
    at 10 min, 1 h, 8 h of one generator)."""
    target = max(400.0, min(settings.passes * per_epoch, settings.max_steps))
    return int(np.clip(target, 4 * per_epoch, 60 * per_epoch))


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
        batch = as_float(data[idx], device)
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
        x = as_float(frames[idx.cpu()], model.device)
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


def _segment_sessions(
    model: SLDSSVAE, n_sessions: int, session: Callable[[int], torch.Tensor]
) -> list[np.ndarray]:
    """Per-frame syllables of each session, as :func:`model.segment.segment_frames` gives;
    ``session(i)`` makes session i's observations (one session's at a time)."""
    out = []
    with torch.no_grad():
        ex = model.expectations()
        for i in range(n_sessions):
            R, r = model.recognize(session(i).to(model.device))
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
    """Fit an SLDS-SVAE to preprocessed sessions, each (T_i, H, W) float in [0, 1] or uint8
    crops (scaled by 1/255; memory-mapped arrays are read a block at a time), with
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
    def session(i: int) -> torch.Tensor:
        return session_observations(
            sessions[i], None if kinematics is None else kinematics[i], config,
            None if polarities is None else polarities[i],
        )

    data = subsequences([len(x) for x in sessions], settings.seq_len, session,
                        settings.half_above_gib)
    n_seq = data.shape[0]
    B = min(settings.batch, n_seq)
    per_epoch = max(1, math.ceil(n_seq / B))
    steps = default_steps(per_epoch, settings) if epochs is None else max(1, epochs * per_epoch)
    steps_a, steps_c = settings.steps_a or steps, settings.steps_c or steps
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

    # Stage B: a sticky Gaussian HMM on the smoothed latents.
    report(0.9 * steps_a / total, "stage B: a first segmentation to initialise the states", {})
    X = smoothed_latents(model_a, data)
    model = SLDSSVAE(config)
    prior_cpu = model.prior
    gamma0, pair0, active = fit_sticky_ghmm(
        X, states, start_states=settings.start_states,
        iters=settings.em_iters, seed=seed,
        dwell_frames=config.dwell_frames, merge_penalty=settings.merge_penalty,
        min_states=settings.min_states, velocity_weight=settings.velocity_weight,
        scale=settings.stage_b_scale, evidence_frames=settings.stage_b_evidence_frames,
        extra=(settings.stage_b_kinematics
               * as_float(data[..., config.pixels : config.pixels + config.kinematics])
               if settings.stage_b_kinematics > 0 and config.kinematics
               and not config.kin_in_state else None),
    )
    # Stage B segments the posterior means, but q(θ) must be built from the full posterior
    # moments: regressions on means alone give noise covariances Q_k smaller than the
    # uncertainty of q(x), and then, in stage C, E[log p(x_t | x_{t-1}, k)] punishes every
    # state by tr(Q_k⁻¹ Cov) and the state with the largest Q takes all frames.
    x1 = X[:, 0]
    one = torch.ones((), dtype=X.dtype)
    stats = SLDSStats(gamma0[:, 0].sum(0), pair0, moment_stats(model_a, data, gamma0),
                      MNIWStats(X.shape[0] * one.view(1, 1), x1.sum(0)[None], x1.T @ x1,
                                X.shape[0] * one))
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
    del model_a
    cache = gamma0.to(torch.float32)
    del gamma0, X  # per-frame arrays of stage B, not needed in stage C

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
    labels_all = _segment_sessions(model, len(sessions), session)
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
        labels_all = _segment_sessions(model, len(sessions), session)
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
        "frames": int(n_frames),
        "steps_a": steps_a,
        "steps_c": steps_c,
        "stage_b_states": int(active.sum()),  # the first segmentation's, before stage C
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
        [f.crops for f in shown],  # uint8, made into floats a block at a time
        [f.kinematics() for f in shown],
        fps=fps,
        progress=progress,
        polarities=[f.polarity for f in shown],
        **kwargs,
    )
    fitted.summary["crop_framing"] = framings.pop()
    return fitted
