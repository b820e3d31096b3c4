"""The parallel-in-time HMM (associative scans) equals the sequential one: marginals, pair
counts, log normaliser and gradients, in float64 on CPU (the accelerator path, tested here)."""

from __future__ import annotations

import pytest
import torch

from model import hmm, hmm_parallel


def _problem(b: int, t: int, k: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    log_pi0 = torch.randn(k, generator=g) - 1.0
    # Sub-stochastic rows (as the SVAE's E[log π]) with a sticky diagonal.
    log_trans = torch.randn(k, k, generator=g) - 2.0 + 3.0 * torch.eye(k)
    log_lik = 4.0 * torch.randn(b, t, k, generator=g)
    return log_pi0, log_trans, log_lik


@pytest.mark.parametrize("t", [1, 2, 3, 7, 64, 129])
def test_parallel_equals_sequential(float64: None, t: int) -> None:
    args = _problem(3, t, 5, seed=t)
    seq = hmm.forward_backward(*args)
    par = hmm_parallel.forward_backward(*args)
    assert torch.allclose(par.log_z, seq.log_z, atol=1e-9, rtol=0)
    assert torch.allclose(par.gamma, seq.gamma, atol=1e-9, rtol=0)
    assert torch.allclose(par.pair_counts, seq.pair_counts, atol=1e-8, rtol=0)
    assert torch.allclose(hmm_parallel.log_normalizer(*args), seq.log_z, atol=1e-9, rtol=0)


def test_gradients_of_the_log_normaliser_agree(float64: None) -> None:
    grads = []
    for fn in (hmm.log_normalizer, hmm_parallel.log_normalizer):
        args = [a.clone().requires_grad_(True) for a in _problem(2, 50, 4, seed=3)]
        fn(*args).sum().backward()
        grads.append([a.grad for a in args])
    for seq, par in zip(*grads, strict=True):
        assert torch.allclose(par, seq, atol=1e-8, rtol=0)
    # d log Z / d log_lik is the marginal: the scan's gradient is a forward-backward.
    args = _problem(2, 50, 4, seed=3)
    assert torch.allclose(grads[1][2], hmm.forward_backward(*args).gamma, atol=1e-8)


def test_the_scan_is_an_inclusive_prefix_product() -> None:
    x = torch.arange(1, 12, dtype=torch.float64).reshape(1, 11)
    assert hmm_parallel.associative_scan(torch.mul, x).tolist() == [
        torch.cumprod(x, dim=1).squeeze(0).tolist()
    ]


def test_the_fit_uses_the_scans_on_an_accelerator_only() -> None:
    from model import hmm as sequential
    from model.svae import hmm_passes

    assert hmm_passes(torch.device("cuda")) is hmm_parallel
    assert hmm_passes(torch.device("cpu")) is sequential
