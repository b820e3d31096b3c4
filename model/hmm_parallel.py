"""Parallel-in-time HMM message passing: the same results as :mod:`model.hmm` in O(log T)
sequential steps instead of T, for accelerators (Särkkä & García-Fernández 2021 give the
Kalman counterpart; the HMM case is a prefix product of matrices in the log semiring).

The forward messages are prefix products ``E_0 ⊗ M_1 ⊗ … ⊗ M_t`` of

    E_0[i, j] = log_pi0[j] + log_lik[0, j]          (every row the first message)
    M_t[i, j] = log_trans[i, j] + log_lik[t, j]      (t ≥ 1)

under ``(X ⊗ Y)[i, j] = log Σ_k exp(X[i, k] + Y[k, j])``, which is associative; the backward
messages are suffix products of the same matrices. Work is O(T K³), twice the sequential
recursion's O(T K²) per step times K, so on a CPU the sequential :mod:`model.hmm` stays the
path; :func:`forward_backward` here is tested equal to it (marginals, pair counts, log
normaliser and gradients) in float64 on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from model.hmm import HMMResult


def log_matmul(x: Tensor, y: Tensor) -> Tensor:
    """``log(exp(x) @ exp(y))`` over the last two dimensions, without forming (…, K, K, K):
    each row of ``x`` and column of ``y`` is shifted by its maximum before a plain matmul."""
    x_max = x.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).min)
    y_max = y.amax(dim=-2, keepdim=True).clamp_min(torch.finfo(y.dtype).min)
    product = torch.exp(x - x_max) @ torch.exp(y - y_max)
    return torch.log(product) + x_max + y_max


def associative_scan(op: Callable[[Tensor, Tensor], Tensor], elems: Tensor) -> Tensor:
    """Inclusive prefix ``op``-products along dimension 1 of ``elems`` (B, T, …): element t is
    ``elems[:, 0] op … op elems[:, t]``. Work-efficient recursion (pairs combined, the half
    scanned, the even positions filled in): O(T) applications of ``op`` in O(log T) rounds."""
    t = elems.shape[1]
    if t < 2:
        return elems
    pairs = op(elems[:, 0 : t - 1 : 2], elems[:, 1:t:2])  # (B, t // 2, …)
    odd = associative_scan(op, pairs)  # prefixes ending at positions 1, 3, 5, …
    even = op(odd[:, : (t - 1) // 2], elems[:, 2:t:2])  # prefixes ending at 2, 4, …
    out = torch.empty_like(elems)
    out[:, 0] = elems[:, 0]
    out[:, 1:t:2] = odd
    out[:, 2:t:2] = even
    return out


def _elements(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> Tensor:
    """(B, T, K, K): E_0 then M_1 … M_{T-1}."""
    b, t, k = log_lik.shape
    first = (log_pi0.expand(b, k) + log_lik[:, 0]).unsqueeze(1).expand(b, k, k)
    rest = log_trans.expand(b, t - 1, k, k) + log_lik[:, 1:].unsqueeze(2)
    return torch.cat([first.unsqueeze(1), rest], dim=1)


def _reverse_op(x: Tensor, y: Tensor) -> Tensor:
    # On the time-reversed sequence, "x then y" is y's matrix applied first.
    return log_matmul(y, x)


def forward_backward(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> HMMResult:
    """Marginals, summed pair marginals and log normaliser, as :func:`model.hmm.forward_backward`
    (same arguments, same results), by parallel prefix and suffix scans."""
    b, t, k = log_lik.shape
    elems = _elements(log_pi0, log_trans, log_lik)
    log_alpha = associative_scan(log_matmul, elems)[:, :, 0, :]  # (B, T, K): every row equal
    log_z = torch.logsumexp(log_alpha[:, -1], dim=-1)
    if t > 1:
        # Suffix products of M_{t+1} … M_{T-1}, applied to the all-zero log vector: β_t.
        suffix = associative_scan(_reverse_op, elems[:, 1:].flip(1)).flip(1)  # (B, T-1, K, K)
        log_beta = torch.cat(
            [torch.logsumexp(suffix, dim=-1), log_lik.new_zeros(b, 1, k)], dim=1
        )  # (B, T, K)
        # Σ_t exp(α_t[i] + M_{t+1}[i, j] + β_{t+1}[j] - log Z)
        pair = log_alpha[:, :-1, :, None] + elems[:, 1:] + log_beta[:, 1:, None, :]
        pair_counts = torch.exp(pair - log_z[:, None, None, None]).sum(dim=1)
    else:
        log_beta = log_lik.new_zeros(b, 1, k)
        pair_counts = log_lik.new_zeros(b, k, k)
    gamma = torch.exp(log_alpha + log_beta - log_z[:, None, None])
    gamma = gamma / gamma.sum(-1, keepdim=True)
    return HMMResult(gamma, pair_counts, log_z)


def log_normalizer(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> Tensor:
    """(B,) log normaliser by the parallel forward scan (differentiable in all inputs)."""
    elems = _elements(log_pi0, log_trans, log_lik)
    return torch.logsumexp(associative_scan(log_matmul, elems)[:, -1, 0, :], dim=-1)
