"""Conjugate priors of the SLDS-SVAE: sticky Dirichlet, MNIW and NIW (svae.md §2.1, §3.2, §3.5).

All global parameters are kept as natural parameters, so that a conjugate update and an SVI
(natural-gradient) step are both linear: η ← (1 − ρ) η + ρ (η₀ + scale · stats).

* Dirichlet: the natural parameters here are the concentrations α themselves (not α − 1), so
  E[log π_ij] = ψ(α_ij) − ψ(Σ_j α_ij) with no offset to get wrong.
* MNIW on (A, Q) with A (D×p) | Q ~ MN(M, Q, V) and Q ~ IW(S, ν):
  η = (V⁻¹, V⁻¹Mᵀ, S + M V⁻¹ Mᵀ, ν); the statistics are (Σ x̃x̃ᵀ, Σ x̃ yᵀ, Σ y yᵀ, n).
* NIW on (μ, Σ) is the MNIW with a one-dimensional regressor x̃ = 1: A = μ (D×1), V = 1/κ.

Everything is float64 and carries an optional leading batch shape (one MNIW per state).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

_LOG_2PI = math.log(2.0 * math.pi)


def _sym(m: Tensor) -> Tensor:
    return 0.5 * (m + m.transpose(-1, -2))


def _spd_inverse(m: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse and log-determinant of SPD matrices (…, n, n), by Cholesky."""
    chol = torch.linalg.cholesky(_sym(m))
    logdet = 2.0 * torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return torch.cholesky_inverse(chol), logdet


# ----------------------------------------------------------------------------------------------
# Dirichlet


def dirichlet_expected_log(alpha: Tensor) -> Tensor:
    """E[log π] (…, K) under Dir(α) over the last axis."""
    return torch.digamma(alpha) - torch.digamma(alpha.sum(-1, keepdim=True))


def dirichlet_kl(alpha_q: Tensor, alpha_p: Tensor) -> Tensor:
    """KL(Dir(α_q) ‖ Dir(α_p)) over the last axis, (…)."""
    sq, sp = alpha_q.sum(-1), alpha_p.sum(-1)
    return (
        torch.lgamma(sq)
        - torch.lgamma(sp)
        - (torch.lgamma(alpha_q) - torch.lgamma(alpha_p)).sum(-1)
        + ((alpha_q - alpha_p) * dirichlet_expected_log(alpha_q)).sum(-1)
    )


def sticky_transition_prior(
    K: int, *, alpha: float = 0.1, dwell_frames: float = 12.0, strength: float = 0.0
) -> Tensor:
    """(K, K) Dirichlet concentrations α + κ·I with κ chosen for a prior expected dwell time.

    Under Dir(α·1 + κ e_k) the expected self-transition is (α + κ)/(Kα + κ); setting it to
    1 − 1/dwell gives κ = α (K (dwell − 1) − dwell), floored at 0. A positive ``strength``
    rescales every row to that total pseudo-count (same expected dwell), so that the prior
    holds its own against the counts of a long recording, as MoSeq's κ does.
    """
    kappa = max(alpha * (K * (dwell_frames - 1.0) - dwell_frames), 0.0)
    conc = torch.full((K, K), alpha, dtype=torch.float64) + kappa * torch.eye(
        K, dtype=torch.float64
    )
    if strength > 0:
        conc = conc * (strength / conc.sum(-1, keepdim=True))
    return conc


# ----------------------------------------------------------------------------------------------
# Matrix-normal inverse-Wishart


class MNIW(NamedTuple):
    """MNIW natural parameters with batch shape (…).

    Vinv: (…, p, p) V⁻¹.  VinvMt: (…, p, D) V⁻¹Mᵀ.  S_plus: (…, D, D) S + M V⁻¹ Mᵀ.  nu: (…) ν.
    """

    Vinv: Tensor
    VinvMt: Tensor
    S_plus: Tensor
    nu: Tensor


class MNIWStandard(NamedTuple):
    """M (…, D, p), V (…, p, p), S (…, D, D), nu (…)."""

    M: Tensor
    V: Tensor
    S: Tensor
    nu: Tensor


class MNIWExpectations(NamedTuple):
    """E[Q⁻¹] (…, D, D), E[Q⁻¹A] (…, D, p), E[AᵀQ⁻¹A] (…, p, p), E[log|Q⁻¹|] (…)."""

    EQi: Tensor
    EQiA: Tensor
    EAtQiA: Tensor
    Elogdet: Tensor


def mniw_from_standard(M: Tensor, V: Tensor, S: Tensor, nu: Tensor) -> MNIW:
    """Natural parameters from (M (…, D, p), V (…, p, p), S (…, D, D), ν (…))."""
    Vinv, _ = _spd_inverse(V)
    VinvMt = Vinv @ M.transpose(-1, -2)
    return MNIW(Vinv, VinvMt, _sym(S + M @ VinvMt), nu)


def mniw_to_standard(eta: MNIW) -> MNIWStandard:
    """Standard parameters: V = (η₁)⁻¹, Mᵀ = V η₂, S = η₃ − η₂ᵀ V η₂, ν = η₄."""
    V, _ = _spd_inverse(eta.Vinv)
    Mt = V @ eta.VinvMt
    S = _sym(eta.S_plus - eta.VinvMt.transpose(-1, -2) @ Mt)
    return MNIWStandard(Mt.transpose(-1, -2), V, S, eta.nu)


def multi_digamma(a: Tensor, D: int) -> Tensor:
    """Σ_{i=0}^{D-1} ψ(a − i/2)."""
    i = torch.arange(D, dtype=a.dtype, device=a.device)
    return torch.digamma(a.unsqueeze(-1) - 0.5 * i).sum(-1)


def mniw_expectations(eta: MNIW) -> MNIWExpectations:
    """Expected statistics of (A, Q) under the MNIW (svae.md §3.2)."""
    M, V, S, nu = mniw_to_standard(eta)
    D = S.shape[-1]
    Sinv, logdetS = _spd_inverse(S)
    nu_ = nu[..., None, None]
    EQi = nu_ * Sinv
    EQiA = EQi @ M
    EAtQiA = _sym(D * V + M.transpose(-1, -2) @ EQiA)
    Elogdet = multi_digamma(0.5 * nu, D) + D * math.log(2.0) - logdetS
    return MNIWExpectations(_sym(EQi), EQiA, EAtQiA, Elogdet)


def mniw_kl(q: MNIW, p: MNIW) -> Tensor:
    """KL(MNIW_q ‖ MNIW_p) (…): KL of the Wisharts on Q⁻¹ plus E_q KL of the matrix normals."""
    Mq, Vq, Sq, nq = mniw_to_standard(q)
    Mp, Vp, Sp, np_ = mniw_to_standard(p)
    D, pdim = Mq.shape[-2], Mq.shape[-1]
    Sq_inv, logdet_Sq = _spd_inverse(Sq)
    _, logdet_Sp = _spd_inverse(Sp)
    tr = (Sp * Sq_inv).sum((-1, -2))  # tr(S_p S_q⁻¹), both symmetric
    kl_w = (
        0.5 * np_ * (logdet_Sq - logdet_Sp)
        + 0.5 * nq * (tr - D)
        + torch.mvlgamma(0.5 * np_, D)
        - torch.mvlgamma(0.5 * nq, D)
        + 0.5 * (nq - np_) * multi_digamma(0.5 * nq, D)
    )
    Vp_inv, logdet_Vp = _spd_inverse(Vp)
    _, logdet_Vq = _spd_inverse(Vq)
    dM = Mq - Mp
    quad = ((nq[..., None, None] * Sq_inv) * (dM @ Vp_inv @ dM.transpose(-1, -2))).sum((-1, -2))
    kl_mn = 0.5 * (
        D * (Vp_inv * Vq).sum((-1, -2)) - D * pdim + D * (logdet_Vp - logdet_Vq) + quad
    )
    return kl_w + kl_mn


class MNIWStats(NamedTuple):
    """Expected statistics: Σ x̃x̃ᵀ (…, p, p), Σ x̃yᵀ (…, p, D), Σ yyᵀ (…, D, D), n (…)."""

    Sxx: Tensor
    Sxy: Tensor
    Syy: Tensor
    n: Tensor


def mniw_svi_step(eta: MNIW, prior: MNIW, stats: MNIWStats, rho: float, scale: float) -> MNIW:
    """η ← (1 − ρ) η + ρ (η₀ + scale · stats); with ρ = 1 this is the conjugate posterior."""
    target = MNIW(*(p0 + scale * s for p0, s in zip(prior, stats, strict=True)))
    new = MNIW(*((1.0 - rho) * e + rho * t for e, t in zip(eta, target, strict=True)))
    return MNIW(_sym(new.Vinv), new.VinvMt, _sym(new.S_plus), new.nu)


def mniw_is_valid(eta: MNIW) -> bool:
    """Whether V and S are positive definite and ν > D − 1 (a proper distribution)."""
    D = eta.S_plus.shape[-1]
    if bool((eta.nu <= D - 1).any()):
        return False
    _, info_v = torch.linalg.cholesky_ex(_sym(eta.Vinv))
    if bool((info_v != 0).any()):
        return False
    V = torch.cholesky_inverse(torch.linalg.cholesky(_sym(eta.Vinv)))
    S = _sym(eta.S_plus - eta.VinvMt.transpose(-1, -2) @ V @ eta.VinvMt)
    _, info_s = torch.linalg.cholesky_ex(S)
    return not bool((info_s != 0).any())


# ----------------------------------------------------------------------------------------------
# All global parameters of the SLDS


class SLDSStats(NamedTuple):
    """Expected sufficient statistics of θ from a batch of subsequences.

    init_counts: (K,) Σ_b q(z_1 = k).   trans_counts: (K, K) Σ pair marginals.
    dynamics: MNIWStats with batch (K,), x̃_t = [x_t; 1] regressing x_{t+1}, weighted by q(z_{t+1}).
    initial: MNIWStats with p = 1 (the NIW of x_1, shared by all states).
    """

    init_counts: Tensor
    trans_counts: Tensor
    dynamics: MNIWStats
    initial: MNIWStats


class SLDSExpectations(NamedTuple):
    """What local inference needs from q(θ), computed once per step.

    log_pi0: (K,) E[log π₀].  log_trans: (K, K) E[log π].  dynamics: MNIWExpectations (K,).
    initial: MNIWExpectations of the NIW (p = 1).
    """

    log_pi0: Tensor
    log_trans: Tensor
    dynamics: MNIWExpectations
    initial: MNIWExpectations


class SLDSParams(NamedTuple):
    """Natural parameters of q(θ) (or of the prior p(θ)).

    init: (K,) Dirichlet on π₀.  trans: (K, K) Dirichlet rows.  dynamics: MNIW (K,).  initial: NIW.
    """

    init: Tensor
    trans: Tensor
    dynamics: MNIW
    initial: MNIW


def default_prior(
    K: int,
    D: int,
    *,
    alpha: float = 0.1,
    dwell_frames: float = 12.0,
    noise_var: float = 0.05,
    ar_coef: float = 0.9,
    trans_strength: float = 0.0,
) -> SLDSParams:
    """Weak prior: sticky transitions, dynamics near x_{t+1} = ar_coef·x_t, E[Q] = noise_var·I.

    The MNIW and NIW carry about one pseudo-observation of x̃x̃ᵀ and ν = D + 2, so a few
    hundred frames of a state override them.
    """
    dt = torch.float64
    M = torch.cat([ar_coef * torch.eye(D, dtype=dt), torch.zeros(D, 1, dtype=dt)], dim=1)
    V = torch.eye(D + 1, dtype=dt)
    nu = torch.tensor(float(D + 2), dtype=dt)
    S = noise_var * (nu - D - 1) * torch.eye(D, dtype=dt)
    dyn = mniw_from_standard(M, V, S, nu)
    dyn = MNIW(*(x.expand(K, *x.shape).clone() for x in dyn))
    init = mniw_from_standard(
        torch.zeros(D, 1, dtype=dt),
        torch.ones(1, 1, dtype=dt),
        torch.eye(D, dtype=dt) * (nu - D - 1),
        nu,
    )
    return SLDSParams(
        torch.ones(K, dtype=dt),
        sticky_transition_prior(K, alpha=alpha, dwell_frames=dwell_frames,
                                strength=trans_strength),
        dyn,
        init,
    )


def expectations(params: SLDSParams) -> SLDSExpectations:
    """E[log π₀], E[log π] and the MNIW/NIW expected statistics under q(θ)."""
    return SLDSExpectations(
        dirichlet_expected_log(params.init),
        dirichlet_expected_log(params.trans),
        mniw_expectations(params.dynamics),
        mniw_expectations(params.initial),
    )


def svi_step(
    params: SLDSParams, prior: SLDSParams, stats: SLDSStats, rho: float, scale: float
) -> SLDSParams:
    """One natural-gradient step on every conjugate factor (svae.md §3.5, §7.5).

    scale = N_seq / B turns the batch statistics into an estimate for the whole data set.
    With ρ = 1 the result is the (stochastic) conjugate posterior. If a factor would become
    improper through round-off, it keeps its previous value.
    """

    def mix(e: Tensor, p0: Tensor, s: Tensor) -> Tensor:
        return (1.0 - rho) * e + rho * (p0 + scale * s)

    dyn = mniw_svi_step(params.dynamics, prior.dynamics, stats.dynamics, rho, scale)
    if not mniw_is_valid(dyn):
        dyn = params.dynamics
    ini = mniw_svi_step(params.initial, prior.initial, stats.initial, rho, scale)
    if not mniw_is_valid(ini):
        ini = params.initial
    return SLDSParams(
        mix(params.init, prior.init, stats.init_counts),
        mix(params.trans, prior.trans, stats.trans_counts),
        dyn,
        ini,
    )


def global_kl(params: SLDSParams, prior: SLDSParams) -> Tensor:
    """KL(q(θ) ‖ p(θ)), a scalar (for logging: it does not depend on the networks)."""
    return (
        dirichlet_kl(params.init, prior.init)
        + dirichlet_kl(params.trans, prior.trans).sum()
        + mniw_kl(params.dynamics, prior.dynamics).sum()
        + mniw_kl(params.initial, prior.initial)
    )
