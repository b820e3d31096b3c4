"""HMM forward–backward and Viterbi against brute-force enumeration (svae.md §7.9 test 2)."""

import itertools

import pytest
import torch

from model.hmm import forward_backward, log_normalizer, viterbi

# Every test here runs with float64 as the default dtype (restored afterwards).
pytestmark = pytest.mark.usefixtures("float64")


def _problem(B: int, T: int, K: int, seed: int, spread: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    # Unnormalised (sub-stochastic) weights, as E[log π] gives in the SVAE.
    log_pi0 = torch.randn(B, K, generator=gen) - 1.0
    log_trans = torch.randn(K, K, generator=gen) - 1.0
    log_lik = spread * torch.randn(B, T, K, generator=gen)
    return log_pi0, log_trans, log_lik


def _brute(log_pi0, log_trans, log_lik):
    B, T, K = log_lik.shape
    paths = torch.tensor(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    score = log_pi0[:, paths[:, 0]] + log_lik[:, 0, paths[:, 0]]
    for t in range(1, T):
        score = score + log_trans[paths[:, t - 1], paths[:, t]] + log_lik[:, t, paths[:, t]]
    log_z = torch.logsumexp(score, dim=-1)
    w = torch.exp(score - log_z[:, None])  # (B, K^T)
    gamma = torch.zeros(B, T, K)
    pair = torch.zeros(B, K, K)
    for t in range(T):
        gamma[:, t] = w @ torch.nn.functional.one_hot(paths[:, t], K).double()
    for t in range(T - 1):
        idx = paths[:, t] * K + paths[:, t + 1]
        pair += (w @ torch.nn.functional.one_hot(idx, K * K).double()).view(B, K, K)
    best = paths[score.argmax(-1)]
    return gamma, pair, log_z, best


@pytest.mark.parametrize("seed,spread", [(0, 3.0), (1, 30.0), (2, 0.1)])
def test_forward_backward_matches_enumeration(seed, spread):
    args = _problem(B=3, T=4, K=3, seed=seed, spread=spread)
    res = forward_backward(*args)
    gamma, pair, log_z, best = _brute(*args)
    assert torch.allclose(res.gamma, gamma, atol=1e-10, rtol=0)
    assert torch.allclose(res.pair_counts, pair, atol=1e-10, rtol=0)
    assert torch.allclose(res.log_z, log_z, atol=1e-10, rtol=0)
    assert torch.allclose(log_normalizer(*args), log_z, atol=1e-10, rtol=0)
    assert torch.equal(viterbi(*args), best)


def test_shared_initial_weights_and_single_step():
    log_pi0, log_trans, log_lik = _problem(B=2, T=1, K=4, seed=4)
    res = forward_backward(log_pi0[0], log_trans, log_lik)
    expect = torch.softmax(log_pi0[0] + log_lik[:, 0], -1)
    assert torch.allclose(res.gamma[:, 0], expect)
    assert torch.allclose(res.pair_counts, torch.zeros(2, 4, 4))


def test_log_normalizer_gradient_is_the_marginals():
    log_pi0, log_trans, log_lik = _problem(B=2, T=6, K=3, seed=5)
    log_lik = log_lik.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_normalizer(log_pi0, log_trans, log_lik).sum(), log_lik)
    gamma = forward_backward(log_pi0, log_trans, log_lik.detach()).gamma
    assert torch.allclose(grad, gamma, atol=1e-10)
