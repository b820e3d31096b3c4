"""The SLDS-SVAE: structured mean-field inference, the SVAE bound and the SVI step (svae.md §3).

Generative model (svae.md §2.1), for one subsequence of T frames:
    z_1 ~ π₀,  z_{t+1} | z_t ~ π_{z_t}                         (sticky Dirichlet rows)
    x_1 ~ N(μ, Σ)                                              (one NIW shared by all states)
    x_{t+1} | x_t, z_{t+1} ~ N(F_k x_t + b_k, Q_k), k = z_{t+1}  (MNIW per state, A_k = [F_k | b_k])
    y_t | x_t ~ N(decoder(x_t), diag σ²)

With ``kin_in_state`` the last dimensions of x_t are the session's kinematics, observed as
k_t | x_t ~ N(x_t[kin], kin_noise² I), and the decoder reads only the pose dimensions; with
``polarity_input`` encoder and decoder also get the session's polarity (±1) as an input.

The local factors q(z) q(x) are found by block coordinate ascent under ``torch.no_grad`` (Kalman
smoother for q(x), HMM forward–backward for q(z)); then one differentiable Kalman pass and a
differentiable HMM log-normaliser give the bound whose gradient trains the networks (§3.4).
The local KL includes the cross term of §3.3:
    KL_local = ⟨ψ, E t(x)⟩ − log Z_x + Σ_{t,k} γ_{t,k} L_{t,k} − log Z_z.

Shapes: B subsequences, T frames, P pixels, D latent dimensions, K states.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from model import hmm as sequential_hmm
from model import hmm_parallel, kalman_parallel
from model import kalman as sequential_kalman
from model.hmm import HMMResult
from model.kalman import KalmanResult, second_moments
from model.networks import Decoder, Encoder
from model.priors import (
    MNIW,
    MNIWExpectations,
    MNIWStats,
    SLDSExpectations,
    SLDSParams,
    SLDSStats,
    default_prior,
    expectations,
    global_kl,
    svi_step,
)

_LOG_2PI = math.log(2.0 * math.pi)


def hmm_passes(device: torch.device) -> ModuleType:
    """The HMM message passing for a device: on an accelerator the parallel-in-time scans
    (O(log T) sequential steps; :mod:`model.hmm_parallel`, tested equal on CPU), on a CPU the
    sequential recursion, which does less work."""
    return hmm_parallel if device.type == "cuda" else sequential_hmm


def kalman_passes(device: torch.device) -> ModuleType:
    """The Gaussian chain smoother for a device: cyclic reduction (:mod:`model.kalman_parallel`,
    2 log₂ T rounds of batched work, tested equal to the sequential filter) or the sequential
    filter. ``SYLLABARY_SMOOTHER`` = ``parallel`` / ``sequential`` chooses; by default (``auto``)
    the parallel one on an accelerator and the sequential one on a CPU."""
    choice = os.environ.get("SYLLABARY_SMOOTHER", "auto")
    if choice not in ("auto", "parallel", "sequential"):
        raise ValueError(f"SYLLABARY_SMOOTHER={choice!r}: use auto, parallel or sequential.")
    if choice == "auto":
        choice = "parallel" if device.type == "cuda" else "sequential"
    return kalman_parallel if choice == "parallel" else sequential_kalman


@dataclass
class SVAEConfig:
    """Everything needed to rebuild an SLDS-SVAE (stored in a fitted model's JSON)."""

    states: int = 40
    latent_dim: int = 10
    height: int = 32
    width: int = 32
    hidden: int = 200
    alpha: float = 0.1  # off-diagonal transition concentration
    dwell_frames: float = 12.0  # prior expected dwell time, sets the sticky bonus
    trans_strength: float = 0.0  # pseudo-counts per transition row (0: α and κ as they are)
    noise_var: float = 0.05  # prior E[Q]
    min_std: float = 0.03  # floor on the decoder's pixel noise
    fps: float = 30.0
    # Per-frame kinematics (model.kinematics) observed beside the pixels: how many, their
    # standardisation (from the training sessions) and their weight in the likelihood.
    kinematics: int = 0
    kin_mean: list[float] = field(default_factory=list)
    kin_std: list[float] = field(default_factory=list)
    kin_weight: float = 1.0
    # True: the kinematics are part of the latent state, observed with noise ``kin_noise``
    # (standardised units), and the networks see only the pixels. False (models fitted before
    # 2026-11-27): the encoder reads them and the decoder reconstructs them, weighted by
    # ``kin_weight``; the latents then mix pose and movement in a way that blurs syllables.
    kin_in_state: bool = False
    kin_noise: float = 0.1
    # How the kinematics were computed (model.kinematics.RECIPES): segmenting must make them
    # the same way. 1: models fitted before 2026-11-27, whose JSON lacks the field.
    kin_recipe: int = 1
    # True: encoder and decoder are told each session's polarity (dark mouse on a light floor,
    # or bright as in depth video), so the latents need not spend themselves on how the two
    # kinds of video look and syllables are shared across them.
    polarity_input: bool = False

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def observed_in_state(self) -> int:
        """How many of the latent state's dimensions are observed kinematics."""
        return self.kinematics if self.kin_in_state else 0

    @property
    def conditions(self) -> int:
        """Per-frame condition columns after pixels and kinematics (the polarity: ±1)."""
        return 1 if self.polarity_input else 0

    @property
    def state_dim(self) -> int:
        """Dimension of the continuous latent state x_t: pose latents, then kinematics."""
        return self.latent_dim + self.observed_in_state

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SVAEConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ----------------------------------------------------------------------------------------------
# Potentials between the conjugate parameters and the local factors (pure functions)


class PairPotentials(NamedTuple):
    """J11, J12, J22 (B, T-1, D, D); h1, h2 (B, T-1, D); const (B,) summed constant terms."""

    J11: Tensor
    J12: Tensor
    J22: Tensor
    h1: Tensor
    h2: Tensor
    const: Tensor


def pair_potentials(w_next: Tensor, dyn: MNIWExpectations) -> PairPotentials:
    """Pair potentials E_{q(z),q(θ)} log p(x_{t+1} | x_t, z_{t+1}), mixed by w_next = q(z_{t+1}).

    w_next: (B, T-1, K). dyn: MNIW expectations with batch (K,) and p = D + 1.
    """
    K, D = dyn.EQi.shape[0], dyn.EQi.shape[-1]
    AA = dyn.EAtQiA[:, :D, :D]
    Ab = dyn.EAtQiA[:, :D, D]
    bb = dyn.EAtQiA[:, D, D]
    QFt = dyn.EQiA[:, :, :D].transpose(-1, -2)
    Qb = dyn.EQiA[:, :, D]
    const_k = -0.5 * bb + 0.5 * dyn.Elogdet - 0.5 * D * _LOG_2PI
    # One (B·(T-1), K) @ (K, F) product mixes every block at once.
    table = torch.cat(
        [AA.reshape(K, -1), -QFt.reshape(K, -1), dyn.EQi.reshape(K, -1), -Ab, Qb], dim=1
    )
    mixed = w_next @ table
    DD = D * D
    J11 = mixed[..., :DD].unflatten(-1, (D, D))
    J12 = mixed[..., DD : 2 * DD].unflatten(-1, (D, D))
    J22 = mixed[..., 2 * DD : 3 * DD].unflatten(-1, (D, D))
    h1 = mixed[..., 3 * DD : 3 * DD + D]
    h2 = mixed[..., 3 * DD + D :]
    const = (w_next @ const_k).sum(-1)
    return PairPotentials(J11, J12, J22, h1, h2, const)


def initial_potential(ini: MNIWExpectations) -> tuple[Tensor, Tensor, Tensor]:
    """(J0 (D, D), h0 (D,), const ()) of E log N(x_1 | μ, Σ) under the NIW (an MNIW, p = 1)."""
    D = ini.EQi.shape[-1]
    const = -0.5 * ini.EAtQiA[0, 0] + 0.5 * ini.Elogdet - 0.5 * D * _LOG_2PI
    return ini.EQi, ini.EQiA[:, 0], const


class TransitionMoments(NamedTuple):
    """Expected moments of each transition x_{t-1} → x_t, for t = 2..T.

    Eprev: (B, T-1, D+1, D+1) E[x̃_{t-1} x̃_{t-1}ᵀ].  Ecross: (B, T-1, D, D+1) E[x_t x̃_{t-1}ᵀ].
    Enext: (B, T-1, D, D) E[x_t x_tᵀ].
    """

    Eprev: Tensor
    Ecross: Tensor
    Enext: Tensor


def transition_moments(kal: KalmanResult) -> TransitionMoments:
    """Moments of consecutive latent pairs, with x̃ = [x; 1], from smoothed marginals."""
    mean = kal.mean
    Exx, Exn = second_moments(kal)
    B, T, _ = mean.shape
    m_prev = mean[:, :-1]
    ones = torch.ones(B, T - 1, 1, 1, dtype=mean.dtype, device=mean.device)
    top = torch.cat([Exx[:, :-1], m_prev.unsqueeze(-1)], dim=-1)
    bottom = torch.cat([m_prev.unsqueeze(-2), ones], dim=-1)
    Eprev = torch.cat([top, bottom], dim=-2)
    Ecross = torch.cat([Exn.transpose(-1, -2), mean[:, 1:].unsqueeze(-1)], dim=-1)
    return TransitionMoments(Eprev, Ecross, Exx[:, 1:])


def node_log_potentials(kal: KalmanResult, dyn: MNIWExpectations) -> Tensor:
    """L (B, T, K): L_{t,k} = E_{q(x),q(θ)} log N(x_t | A_k x̃_{t-1}, Q_k) for t ≥ 2, L_{1,k} = 0.

    The first frame's term is 0 because the initial state's NIW is shared by all states.
    Computed from the smoothed marginals block by block (E[x̃ x̃ᵀ] = [[E xxᵀ, E x], [E xᵀ, 1]]
    for x̃ = [x; 1]) rather than from :func:`transition_moments`: building those (B, T, 331)
    moments took a fifth of each mean-field sweep as one big copy; the values are the same."""
    K, D = dyn.EQi.shape[0], dyn.EQi.shape[-1]
    Exx, Exn = second_moments(kal)
    W = -0.5 * dyn.EAtQiA  # (K, D+1, D+1), symmetric
    V = dyn.EQiA  # (K, D, D+1)
    # E xxᵀ enters as x_t (with -½E[Q⁻¹]) and as x_{t-1} (with W's D x D block).
    quad = Exx.flatten(-2) @ torch.cat(
        [(-0.5 * dyn.EQi).reshape(K, -1), W[:, :D, :D].reshape(K, -1)]
    ).T
    lin = kal.mean @ torch.cat([V[:, :, D], 2.0 * W[:, :D, D]], dim=0).T
    # E[x_t x_{t-1}ᵀ] = Exnᵀ against E[Q⁻¹A]'s D x D block: transpose the table, not the data.
    cross = Exn.flatten(-2) @ V[:, :, :D].transpose(-1, -2).reshape(K, -1).T
    const = W[:, D, D] + 0.5 * dyn.Elogdet - 0.5 * D * _LOG_2PI
    L = quad[:, 1:, :K] + quad[:, :-1, K:] + lin[:, 1:, :K] + lin[:, :-1, K:] + cross + const
    first = L.new_zeros(L.shape[0], 1, K)
    return torch.cat([first, L], dim=1)


def psi_expectation(R: Tensor, r: Tensor, kal: KalmanResult) -> Tensor:
    """(B,) Σ_t ⟨ψ_t, E t(x_t)⟩ = Σ_t [−½ Σ_i R_ti E x_ti² + r_tᵀ E x_t]."""
    ex2 = kal.cov.diagonal(dim1=-2, dim2=-1) + kal.mean**2
    return (-0.5 * R * ex2 + r * kal.mean).sum((1, 2))


class LocalPosterior(NamedTuple):
    """Result of local inference for a batch.

    gamma: (B, T, K) q(z_t).  pair_counts: (B, K, K).  kalman: q(x) marginals (and samples).
    log_lik: (B, T, K) node log-potentials L.  kl: (B,) local KL.  sweeps: mean-field sweeps run.
    """

    gamma: Tensor
    pair_counts: Tensor
    kalman: KalmanResult
    log_lik: Tensor
    kl: Tensor
    sweeps: int


def _smooth(
    R: Tensor, r: Tensor, w: Tensor, ex: SLDSExpectations, **kw: Any
) -> tuple[KalmanResult, PairPotentials, Tensor]:
    J0, h0, c0 = initial_potential(ex.initial)
    pots = pair_potentials(w[:, 1:], ex.dynamics)
    kal = kalman_passes(r.device).kalman_smoother(J0, h0, *pots[:5], R, r, **kw)
    log_zx = kal.log_z + pots.const + c0
    return kal, pots, log_zx


class MeanField(NamedTuple):
    """gamma (B, T, K); hmm: last HMM result; sweeps: count; log_lik: last L (B, T, K)."""

    gamma: Tensor
    hmm: HMMResult
    sweeps: int
    log_lik: Tensor


def mean_field(
    R: Tensor,
    r: Tensor,
    ex: SLDSExpectations,
    *,
    w_init: Tensor | None = None,
    max_sweeps: int = 10,
    tol: float = 1e-3,
    settle_sweeps: int = 0,
) -> MeanField:
    """Block coordinate ascent on q(z) q(x) without gradients.

    R, r: (B, T, D) float64 recognition potentials. w_init: (B, T, K) starting q(z), or None to
    start from the prior state occupancy. Stops when max |Δγ| < tol, or (settle_sweeps > 0)
    once no frame's most probable state has changed for that many sweeps in a row.
    Returns γ (B, T, K), the last HMM result, the number of sweeps and the last L (B, T, K).
    """
    B, T, _ = r.shape
    K = ex.log_trans.shape[0]
    with torch.no_grad():
        if w_init is None:
            # Start from the prior occupancy: the first sweep smooths x under the mixture of
            # all dynamics. (A per-frame HMM start was tried: noisier, more sweeps to clean.)
            occ = torch.softmax(torch.logsumexp(ex.log_trans, dim=0), dim=0)
            w = occ.expand(B, T, K)
        else:
            w = w_init
        hmm = None
        sweeps = 0
        settled = 0
        labels = None
        for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - sweeps is reported
            kal, _, _ = _smooth(R, r, w, ex)
            L = node_log_potentials(kal, ex.dynamics)
            hmm = hmm_passes(L.device).forward_backward(ex.log_pi0, ex.log_trans, L)
            delta = (hmm.gamma - w).abs().max().item()
            w = hmm.gamma
            if delta < tol:
                break
            if settle_sweeps > 0:
                # Over a long video some frame's q(z) keeps moving in the third decimal long
                # after every label has settled; segmenting only needs the labels.
                new = w.argmax(-1)
                settled = settled + 1 if labels is not None and torch.equal(new, labels) else 0
                labels = new
                if settled >= settle_sweeps:
                    break
    assert hmm is not None
    return MeanField(w, hmm, sweeps, L)


def local_posterior(
    R: Tensor,
    r: Tensor,
    ex: SLDSExpectations,
    *,
    w_init: Tensor | None = None,
    max_sweeps: int = 10,
    tol: float = 1e-3,
    num_samples: int = 0,
    generator: torch.Generator | None = None,
) -> LocalPosterior:
    """Mean-field loop, then one differentiable pass in (R, r) for q(x), L, log Z_z and the KL.

    Gradients reach (R, r) only through this last pass (svae.md §3.4); q(z) is held fixed.
    """
    gamma, hmm, sweeps, _ = mean_field(R.detach(), r.detach(), ex, w_init=w_init,
                                       max_sweeps=max_sweeps, tol=tol)
    kal, _, log_zx = _smooth(R, r, gamma, ex, num_samples=num_samples, generator=generator)
    L = node_log_potentials(kal, ex.dynamics)
    log_zz = hmm_passes(L.device).log_normalizer(ex.log_pi0, ex.log_trans, L)
    kl = psi_expectation(R, r, kal) - log_zx + (gamma * L).sum((1, 2)) - log_zz
    return LocalPosterior(gamma, hmm.pair_counts, kal, L, kl, sweeps)


def sufficient_stats(post: LocalPosterior) -> SLDSStats:
    """Detached expected sufficient statistics of θ summed over the batch (svae.md §7.5)."""
    with torch.no_grad():
        k = post.kalman
        kal = KalmanResult(k.mean.detach(), k.cov.detach(), k.cross.detach(), k.log_z.detach(),
                           None if k.sample is None else k.sample.detach())
        mom = transition_moments(kal)
        w_next = post.gamma[:, 1:]
        dyn = MNIWStats(
            torch.einsum("btk,btij->kij", w_next, mom.Eprev),
            torch.einsum("btk,btij->kji", w_next, mom.Ecross),
            torch.einsum("btk,btij->kij", w_next, mom.Enext),
            w_next.sum((0, 1)),
        )
        B = kal.mean.shape[0]
        m1 = kal.mean[:, 0]
        Ex1 = kal.cov[:, 0] + m1.unsqueeze(-1) * m1.unsqueeze(-2)
        one = torch.ones((), dtype=m1.dtype, device=m1.device)
        ini = MNIWStats(B * one.view(1, 1), m1.sum(0).unsqueeze(0), Ex1.sum(0), B * one)
        return SLDSStats(post.gamma[:, 0].sum(0), post.pair_counts.sum(0), dyn, ini)


# ----------------------------------------------------------------------------------------------
# The model


def params_to(params: SLDSParams, device: torch.device | str) -> SLDSParams:
    """Move every tensor of the conjugate parameters to a device (float64)."""

    def mv(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=torch.float64)

    return SLDSParams(
        mv(params.init), mv(params.trans), MNIW(*map(mv, params.dynamics)),
        MNIW(*map(mv, params.initial)),
    )


def frames_to_tensor(frames: np.ndarray, config: SVAEConfig) -> Tensor:
    """Frames (T, H, W) in [0, 1] → (T, P) float32, area-resized to the model's input size."""
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
    if x.ndim != 3:
        raise ValueError(f"frames must have shape (T, H, W), got {tuple(x.shape)}")
    if x.shape[1:] != (config.height, config.width):
        x = nn.functional.interpolate(
            x.unsqueeze(1), size=(config.height, config.width), mode="area"
        ).squeeze(1)
    return x.reshape(x.shape[0], -1).clamp(0.0, 1.0)


def observations(
    frames: np.ndarray,
    kinematics: np.ndarray | None,
    config: SVAEConfig,
    polarity: str | None = None,
) -> Tensor:
    """What the model observes per frame: (T, P) pixels, then (T, F) standardised kinematics
    when the model was fitted with them, then the polarity (+1 bright, -1 dark) when the model
    is told it."""
    x = frames_to_tensor(frames, config)
    parts = [x]
    if config.kinematics:
        if kinematics is None:
            raise ValueError(
                "this model was fitted with per-frame kinematics (speed, turning, body "
                "length); pass the session's kinematics (model.kinematics.from_scalars) to "
                "segment it"
            )
        k = np.asarray(kinematics, dtype=np.float64)
        # Models take as many columns as they were fitted with, from the front: columns added
        # since (model.kinematics.ALL_KINEMATIC_NAMES) go at the end.
        if k.ndim != 2 or k.shape[0] != x.shape[0] or k.shape[1] < config.kinematics:
            raise ValueError(
                f"kinematics must be ({x.shape[0]}, {config.kinematics}) for these frames, "
                f"got {k.shape}"
            )
        z = (k[:, : config.kinematics] - np.asarray(config.kin_mean)) / np.asarray(
            config.kin_std
        )
        parts.append(torch.as_tensor(np.clip(z, -8, 8), dtype=torch.float32))
    if config.polarity_input:
        if polarity not in ("dark", "bright"):
            raise ValueError(
                "this model was fitted knowing each video's polarity; pass the session's "
                f"polarity ('dark' or 'bright', from preprocessing), got {polarity!r}"
            )
        parts.append(torch.full((x.shape[0], 1), 1.0 if polarity == "bright" else -1.0,
                                dtype=torch.float32))
    return torch.cat(parts, 1) if len(parts) > 1 else x


def input_size(height: int, width: int, max_side: int = 32) -> tuple[int, int]:
    """The model's input size for crops of (height, width): at most max_side on the long side."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class BoundTerms(NamedTuple):
    """loss: scalar to minimise; elbo: (B,) per-subsequence bound; log_lik, kl: (B,) its parts."""

    loss: Tensor
    elbo: Tensor
    log_lik: Tensor
    kl: Tensor
    posterior: LocalPosterior


class SLDSSVAE(nn.Module):
    """Networks (float32, trained by Adam) plus conjugate q(θ) (float64, trained by SVI)."""

    def __init__(self, config: SVAEConfig) -> None:
        super().__init__()
        self.config = config
        D, P = config.latent_dim, config.pixels
        F = config.kinematics - config.observed_in_state  # kinematics the networks handle
        C = config.conditions
        self.encoder = Encoder(P + F + C, D, config.hidden).float()
        self.decoder = Decoder(P, D + C, config.hidden, config.min_std, extra=F,
                               extra_weight=config.kin_weight).float()
        self.prior = default_prior(
            config.states, config.state_dim, alpha=config.alpha,
            dwell_frames=config.dwell_frames,
            noise_var=config.noise_var, trans_strength=config.trans_strength,
        )
        self.params = self.prior

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def to_device(self, device: torch.device | str) -> SLDSSVAE:
        """Move networks and conjugate parameters together."""
        self.to(device)
        self.prior = params_to(self.prior, device)
        self.params = params_to(self.params, device)
        return self

    def expectations(self) -> SLDSExpectations:
        return expectations(self.params)

    def _parts(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Observations (…, P') → what the networks reconstruct (pixels, and the kinematics
        unless they are in the state), observed kinematics in the state, condition columns."""
        cfg = self.config
        P, F, C = cfg.pixels, cfg.kinematics, cfg.conditions
        end = frames.shape[-1] - C
        target = frames[..., :P] if cfg.kin_in_state else frames[..., :end]
        observed = frames[..., P : P + F] if cfg.kin_in_state else frames[..., end:end]
        return target, observed, frames[..., end:]

    def pose_potentials(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder's potentials (R, r) (…, latent_dim) float32 on the pose latents."""
        target, _, cond = self._parts(frames)
        return self.encoder(torch.cat([target, cond], -1) if cond.shape[-1] else target)

    def pose_log_likelihood(self, z: Tensor, frames: Tensor) -> Tensor:
        """Decoder's log p(pixels (and kinematics) | pose latents z (…, latent_dim))."""
        target, _, cond = self._parts(frames)
        if cond.shape[-1]:
            z = torch.cat([z, cond.to(z.dtype)], -1)
        return self.decoder.log_likelihood(z, target)

    def recognize(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames (B, T, P) float32 → recognition potentials (R, r), each (B, T, D) float64.

        Observed kinematics get the exact potential of their Gaussian measurement."""
        R, r = self.pose_potentials(frames)
        R, r = R.double(), r.double()
        if not self.config.observed_in_state:
            return R, r
        k = self._parts(frames)[1].double()
        prec = 1.0 / self.config.kin_noise**2
        return torch.cat([R, torch.full_like(k, prec)], -1), torch.cat([r, prec * k], -1)

    def log_likelihood(self, x: Tensor, frames: Tensor) -> Tensor:
        """log p(frames | x) per frame, (…) for x (…, D), frames (…, P')."""
        D = self.config.latent_dim
        ll = self.pose_log_likelihood(x[..., :D], frames)
        if not self.config.observed_in_state:
            return ll
        var = self.config.kin_noise**2
        resid = self._parts(frames)[1] - x[..., D:]
        return ll - 0.5 * (resid**2 / var + math.log(2 * math.pi * var)).sum(-1)

    def bound(
        self,
        frames: Tensor,
        *,
        ex: SLDSExpectations | None = None,
        kl_weight: float = 1.0,
        max_sweeps: int = 5,
        mask: Tensor | None = None,
        w_init: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> BoundTerms:
        """The SVAE bound on a batch (svae.md §7.3 steps 2–5).

        frames: (B, T, P). mask: optional (B, T) bool, True where the recognition potential is
        replaced by an uninformative one (self-supervised masking, §4.4); the frames there are
        still reconstructed, so the dynamics must carry the information across the gap.
        w_init: optional (B, T, K) warm start for q(z) (e.g. last epoch's marginals).
        """
        ex = self.expectations() if ex is None else ex
        R, r = self.recognize(frames)
        if mask is not None:
            keep = (~mask).unsqueeze(-1).to(R.dtype)
            R = R * keep + 1e-6 * (1 - keep)
            r = r * keep
        post = local_posterior(R, r, ex, w_init=w_init, max_sweeps=max_sweeps, num_samples=1,
                               generator=generator)
        assert post.kalman.sample is not None
        x_hat = post.kalman.sample[:, 0].float()
        log_lik = self.log_likelihood(x_hat, frames).sum(-1)
        kl = post.kl.float()
        elbo = log_lik - kl
        B, T = frames.shape[:2]
        loss = -(log_lik - kl_weight * kl).sum() / (B * T)
        return BoundTerms(loss, elbo.detach(), log_lik.detach(), kl.detach(), post)

    def svi_update(self, stats: SLDSStats, rho: float, scale: float) -> None:
        """η ← (1 − ρ) η + ρ (η₀ + scale · stats)."""
        self.params = svi_step(self.params, self.prior, stats, rho, scale)

    def global_kl(self) -> float:
        return float(global_kl(self.params, self.prior))
