"""Parallel-in-time Gaussian chain inference by cyclic reduction: the same results as
:func:`model.kalman.kalman_smoother` (same arguments, same :class:`~model.kalman.KalmanResult`)
in O(log T) rounds of batched matrix work instead of T sequential steps.

The chain's joint precision is block tridiagonal. Integrating out every odd-indexed x_t (each
touches only its two even neighbours, so all of them at once) leaves a block-tridiagonal chain
on the even ones, half as long (Schur complements, which stay positive definite); repeated,
one variable remains. log Z collects each integrated variable's normaliser. Going back down,
each odd variable given its two neighbours is N(u − Ua x_a − Ub x_b, D⁻¹), which gives its
mean, covariance, its cross-covariances with both neighbours (the smoother's ``cross``) and,
with noise, a joint sample. Särkkä & García-Fernández (2021) reach the same span by scanning
filtering and smoothing operators; in information form this elimination is shorter and needs
no conversion of the potentials to a state-space model.

Work is O(T D³), like the sequential recursion, in 2 log₂ T rounds of large batched calls, so
on a CPU it trades the sequential filter's T small calls for few large ones as well.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from model.kalman import KalmanResult, _cholesky

_LOG_2PI = math.log(2.0 * math.pi)


class _Level(NamedTuple):
    """What one round of elimination keeps for the way back down (odd variables k = 0..m-1)."""

    ua: Tensor  # (B, m, D, D): D_k⁻¹ J_{k, left}
    ub: Tensor  # (B, m, D, D): D_k⁻¹ J_{k, right}
    u: Tensor  # (B, m, D): D_k⁻¹ h_k
    dinv: Tensor  # (B, m, D, D): D_k⁻¹, the conditional covariance
    chol: Tensor  # (B, m, D, D): Cholesky of D_k (for samples)
    times: Tensor  # (m,) original time index of each odd variable (-1: padding)
    padded: bool  # a padding variable was appended before this round


def _joint(
    J0: Tensor,
    h0: Tensor,
    J11: Tensor,
    J12: Tensor,
    J22: Tensor,
    h1: Tensor,
    h2: Tensor,
    R: Tensor,
    r: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Diagonal blocks (B, T, D, D), upper off-diagonal blocks (B, T-1, D, D), linear (B, T, D)."""
    B, T, D = r.shape
    zero_j, zero_h = r.new_zeros(B, T - 1, D, D), r.new_zeros(B, T - 1, D)
    diag = torch.diag_embed(R) + torch.cat([J0.expand(B, D, D).unsqueeze(1), zero_j], 1)
    lin = r + torch.cat([h0.expand(B, D).unsqueeze(1), zero_h], 1)
    if T > 1:
        one_j, one_h = r.new_zeros(B, 1, D, D), r.new_zeros(B, 1, D)
        diag = diag + torch.cat([J11, one_j], 1) + torch.cat([one_j, J22], 1)
        lin = lin + torch.cat([h1, one_h], 1) + torch.cat([one_h, h2], 1)
    return diag, J12, lin


def kalman_smoother(
    J0: Tensor,
    h0: Tensor,
    J11: Tensor,
    J12: Tensor,
    J22: Tensor,
    h1: Tensor,
    h2: Tensor,
    R: Tensor,
    r: Tensor,
    *,
    num_samples: int = 0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> KalmanResult:
    """Smoothed marginals, cross-covariances, log Z and samples, as
    :func:`model.kalman.kalman_smoother`. ``noise`` (B, S, T, D) enters differently here (each
    x_t's draw is conditioned on its elimination neighbours, not on x_{t+1}), so samples from the
    same noise differ between the two; their distribution is the same."""
    B, T, D = r.shape
    diag, off, lin = _joint(J0, h0, J11, J12, J22, h1, h2, R, r)
    if num_samples > 0 and noise is None:
        noise = torch.randn((B, num_samples, T, D), generator=generator, dtype=r.dtype,
                            device=r.device)  # fmt: skip
    eye = torch.eye(D, dtype=r.dtype, device=r.device)
    index = torch.arange(T, device=r.device)
    log_z = r.new_zeros(B)
    levels: list[_Level] = []
    while diag.shape[1] > 1:
        n = diag.shape[1]
        padded = n % 2 == 0
        if padded:  # an uncoupled N(0, I) variable at the end makes the length odd
            diag = torch.cat([diag, eye.expand(B, 1, D, D)], 1)
            off = torch.cat([off, r.new_zeros(B, 1, D, D)], 1)
            lin = torch.cat([lin, r.new_zeros(B, 1, D)], 1)
            index = torch.cat([index, index.new_full((1,), -1)])
        left_off, right_off = off[:, 0::2], off[:, 1::2]  # J_{2k,2k+1}, J_{2k+1,2k+2}
        chol = _cholesky(diag[:, 1::2])
        dinv = torch.cholesky_inverse(chol)
        ua = dinv @ left_off.transpose(-1, -2)  # D⁻¹ J_{i,a}
        ub = dinv @ right_off  # D⁻¹ J_{i,b}
        h_odd = lin[:, 1::2]
        u = (dinv @ h_odd.unsqueeze(-1)).squeeze(-1)
        log_z = log_z + (
            0.5 * (h_odd * u).sum((1, 2))
            - torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum((1, 2))
            + 0.5 * u.shape[1] * D * _LOG_2PI
        )
        levels.append(_Level(ua, ub, u, dinv, chol, index[1::2], padded))
        # Schur complement onto the even variables.
        zj, zh = r.new_zeros(B, 1, D, D), r.new_zeros(B, 1, D)
        from_right = left_off @ ua  # J_{e,e+1} D⁻¹ J_{e+1,e}
        from_left = right_off.transpose(-1, -2) @ ub  # J_{e,e-1} D⁻¹ J_{e-1,e}
        diag = diag[:, 0::2] - torch.cat([from_right, zj], 1) - torch.cat([zj, from_left], 1)
        h_right = (left_off @ u.unsqueeze(-1)).squeeze(-1)
        h_left = (right_off.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
        lin = lin[:, 0::2] - torch.cat([h_right, zh], 1) - torch.cat([zh, h_left], 1)
        off = -(left_off @ ub)
        index = index[0::2]
        if padded:  # the padding variable is still uncoupled: leave it out of the rest
            diag, off, lin, index = diag[:, :-1], off[:, :-1], lin[:, :-1], index[:-1]

    chol = _cholesky(diag[:, 0])
    cov_top = torch.cholesky_inverse(chol)
    mean_top = (cov_top @ lin[:, 0].unsqueeze(-1)).squeeze(-1)
    log_z = (
        log_z
        + 0.5 * (lin[:, 0] * mean_top).sum(-1)
        - torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
        + 0.5 * D * _LOG_2PI
    )
    mean, cov = mean_top.unsqueeze(1), cov_top.unsqueeze(1)
    cross = r.new_zeros(B, 0, D, D)
    sample = None
    if noise is not None:
        # (B, S, 1, D): the last remaining variable is x_1 (index 0 is never eliminated).
        sample = mean_top[:, None, None] + _deviation(chol.unsqueeze(1), noise[:, :, :1])

    for lev in reversed(levels):
        if lev.padded:  # the padding variable back, as it was: N(0, I), uncoupled
            mean = torch.cat([mean, mean.new_zeros(B, 1, D)], 1)
            cov = torch.cat([cov, eye.expand(B, 1, D, D)], 1)
            cross = torch.cat([cross, cross.new_zeros(B, 1, D, D)], 1)
            if sample is not None:
                sample = torch.cat([sample, sample.new_zeros(B, sample.shape[1], 1, D)], 2)
        ua, ub = lev.ua, lev.ub
        m_a, m_b = mean[:, :-1], mean[:, 1:]
        mean_o = lev.u - (ua @ m_a.unsqueeze(-1)).squeeze(-1) - (ub @ m_b.unsqueeze(-1)).squeeze(-1)
        c_a, c_b = cov[:, :-1], cov[:, 1:]
        c_oa = -ua @ c_a - ub @ cross.transpose(-1, -2)  # Cov[x_o, x_left]
        c_ob = -ua @ cross - ub @ c_b  # Cov[x_o, x_right]
        cov_o = lev.dinv - c_oa @ ua.transpose(-1, -2) - c_ob @ ub.transpose(-1, -2)
        cov_o = 0.5 * (cov_o + cov_o.transpose(-1, -2))
        mean = _interleave(mean, mean_o)
        cov = _interleave(cov, cov_o)
        cross = torch.stack([c_oa.transpose(-1, -2), c_ob], 2).flatten(1, 2)
        if sample is not None and noise is not None:
            s_a, s_b = sample[:, :, :-1], sample[:, :, 1:]
            centre = (
                lev.u.unsqueeze(1)
                - (ua.unsqueeze(1) @ s_a.unsqueeze(-1)).squeeze(-1)
                - (ub.unsqueeze(1) @ s_b.unsqueeze(-1)).squeeze(-1)
            )
            eps = _noise_at(noise, lev.times)
            sample = _interleave(sample, centre + _deviation(lev.chol, eps), dim=2)
        if lev.padded:
            mean, cov, cross = mean[:, :-1], cov[:, :-1], cross[:, :-1]
            if sample is not None:
                sample = sample[:, :, :-1]
    return KalmanResult(mean, cov, cross, log_z, sample)


def _interleave(even: Tensor, odd: Tensor, dim: int = 1) -> Tensor:
    """[e0, o0, e1, o1, …, e_m] along ``dim`` (one more even than odd)."""
    pairs = torch.stack([even.narrow(dim, 0, odd.shape[dim]), odd], dim + 1).flatten(dim, dim + 1)
    return torch.cat([pairs, even.narrow(dim, even.shape[dim] - 1, 1)], dim)


def _noise_at(noise: Tensor, index: Tensor) -> Tensor:
    """(B, S, m, D) the noise of each original time index; zeros for padding (-1)."""
    picked = noise[:, :, index.clamp_min(0)]
    return torch.where((index >= 0).view(1, 1, -1, 1), picked, torch.zeros_like(picked))


def _deviation(chol: Tensor, eps: Tensor) -> Tensor:
    """L⁻ᵀ ε for P = L Lᵀ: covariance P⁻¹. chol (B, m, D, D), eps (B, S, m, D)."""
    lt = chol.unsqueeze(1).transpose(-1, -2)
    return torch.linalg.solve_triangular(lt, eps.unsqueeze(-1), upper=True).squeeze(-1)
