"""Batched HMM message passing: scaled forward–backward, log normaliser and Viterbi (svae.md §7.4).

The chain z_1..z_T over K states has the unnormalised log weight

    log_pi0[z_1] + Σ_{t≥2} log_trans[z_{t-1}, z_t] + Σ_t log_lik[t, z_t]

where log_pi0 and log_trans need not be normalised (in the SVAE they are E[log π], so exp of them is
sub-stochastic). The forward–backward works in probability space with per-step maxima subtracted
and per-step normalisers c_t, which is stable for any K and needs no logsumexp over K×K.
Run it in float64.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor


class HMMResult(NamedTuple):
    """Posterior summaries of a batch of chains.

    gamma: (B, T, K) marginals q(z_t = k).
    pair_counts: (B, K, K) Σ_t q(z_t = i, z_{t+1} = j).
    log_z: (B,) log normaliser.
    """

    gamma: Tensor
    pair_counts: Tensor
    log_z: Tensor


def _forward(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor):
    """Scaled forward pass: alphas (list of (B, K)), emissions, normalisers, transitions, log Z."""
    B, T, K = log_lik.shape
    trans = torch.exp(log_trans - log_trans.max())
    trans_shift = log_trans.max()
    peak = log_lik.max(dim=-1, keepdim=True).values  # (B, T, 1)
    emis = torch.exp(log_lik - peak)
    pi0 = torch.exp(log_pi0).expand(B, K)
    alphas: list[Tensor] = []
    norms: list[Tensor] = []
    a = pi0 * emis[:, 0]
    for t in range(T):
        if t > 0:
            a = (alphas[-1] @ trans) * emis[:, t]
        c = a.sum(-1, keepdim=True)
        a = a / c
        alphas.append(a)
        norms.append(c)
    c_all = torch.cat(norms, dim=-1)  # (B, T)
    log_z = torch.log(c_all).sum(-1) + peak.squeeze(-1).sum(-1) + (T - 1) * trans_shift
    return alphas, emis, c_all, trans, log_z


def forward_backward(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> HMMResult:
    """Marginals, summed pair marginals and log normaliser of a batch of chains.

    Args:
        log_pi0: (K,) or (B, K) initial log weights.
        log_trans: (K, K) transition log weights, rows = from, columns = to.
        log_lik: (B, T, K) node log potentials.
    """
    B, T, K = log_lik.shape
    alphas, emis, c_all, trans, log_z = _forward(log_pi0, log_trans, log_lik)
    # Backward messages only inside the loop; marginals and pair counts are formed after it
    # with a few batched products.
    beta = torch.ones_like(alphas[-1])
    betas = [beta]
    msgs: list[Tensor] = []
    transT = trans.T
    for t in range(T - 2, -1, -1):
        msg = emis[:, t + 1] * beta / c_all[:, t + 1 : t + 2]  # (B, K)
        msgs.append(msg)
        beta = msg @ transT
        betas.append(beta)
    alpha = torch.stack(alphas, dim=1)  # (B, T, K)
    gamma = alpha * torch.stack(betas[::-1], dim=1)
    # Renormalise against round-off so that each marginal sums to one exactly.
    gamma = gamma / gamma.sum(-1, keepdim=True)
    if T > 1:
        msg_all = torch.stack(msgs[::-1], dim=1)  # (B, T-1, K), message into t+1
        acc = alpha[:, :-1].transpose(1, 2) @ msg_all  # (B, K, K)
    else:
        acc = log_lik.new_zeros(B, K, K)
    return HMMResult(gamma, acc * trans, log_z)


def log_normalizer(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> Tensor:
    """(B,) log normaliser only, by the scaled forward pass (differentiable in all inputs)."""
    return _forward(log_pi0, log_trans, log_lik)[-1]


def viterbi(log_pi0: Tensor, log_trans: Tensor, log_lik: Tensor) -> Tensor:
    """(B, T) most probable state paths, by max-product in log space."""
    B, T, K = log_lik.shape
    score = log_pi0.expand(B, K) + log_lik[:, 0]
    back: list[Tensor] = []
    for t in range(1, T):
        cand = score.unsqueeze(-1) + log_trans  # (B, K_from, K_to)
        score, arg = cand.max(dim=1)
        score = score + log_lik[:, t]
        back.append(arg)
    path = torch.empty(B, T, dtype=torch.long, device=log_lik.device)
    path[:, -1] = score.argmax(-1)
    for t in range(T - 2, -1, -1):
        path[:, t] = back[t].gather(1, path[:, t + 1 : t + 2]).squeeze(1)
    return path


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run torch's CPU ops on one thread inside. The mean field's ops act on (windows, 10, 10)
    blocks, far too small to split across threads; with a second thread, every op pays for a
    hand-off and, when another process keeps the cores busy, for spin-waiting workers: on two
    shared cores 11 minutes of video took 115 s with two threads and 4 s with one."""
    old = torch.get_num_threads()
    if device.type != "cpu" or old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
