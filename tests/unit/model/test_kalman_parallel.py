"""The parallel-in-time Kalman smoother (cyclic reduction) equals the sequential one: means,
covariances, cross-covariances, log Z and gradients, in float64 on CPU (the accelerator path,
tested here); its samples have the smoothed marginals' moments."""

from __future__ import annotations

import pytest
import torch

from model import kalman, kalman_parallel
from tests.unit.model.test_kalman import _dense, _problem

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 8, 17, 64, 100])
def test_parallel_equals_sequential(t: int) -> None:
    args = _problem(B=3, T=t, D=4, seed=t)
    seq = kalman.kalman_smoother(*args)
    par = kalman_parallel.kalman_smoother(*args)
    for name in ("mean", "cov", "cross", "log_z"):
        a, b = getattr(par, name), getattr(seq, name)
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-9), (name, (a - b).abs().max())


def test_parallel_matches_the_dense_solve() -> None:
    B, T, D = 2, 6, 3
    args = _problem(B, T, D, seed=5)
    res = kalman_parallel.kalman_smoother(*args)
    sigma, mu, log_z = _dense(*args)
    assert torch.allclose(res.mean, mu.view(B, T, D), atol=1e-10, rtol=0)
    assert torch.allclose(res.log_z, log_z, atol=1e-10, rtol=0)
    for t in range(T - 1):
        a, b = slice(t * D, (t + 1) * D), slice((t + 1) * D, (t + 2) * D)
        assert torch.allclose(res.cross[:, t], sigma[:, a, b], atol=1e-10, rtol=0)


def test_gradients_agree() -> None:
    """Gradients of a loss of every output (as the SVAE's bound uses them) in every input."""
    grads = []
    for smoother in (kalman.kalman_smoother, kalman_parallel.kalman_smoother):
        args = [a.clone().requires_grad_(True) for a in _problem(B=2, T=13, D=3, seed=7)]
        res = smoother(*args)
        loss = res.log_z.sum() + (res.mean**2).sum() + res.cov.sum() + res.cross.sum()
        loss.backward()
        grads.append([a.grad for a in args])
    for seq, par in zip(*grads, strict=True):
        assert torch.allclose(par, seq, atol=1e-8, rtol=1e-8), (par - seq).abs().max()


def test_samples_have_the_smoothed_moments() -> None:
    args = _problem(B=1, T=9, D=2, seed=11)
    res = kalman_parallel.kalman_smoother(
        *args, num_samples=20000, generator=torch.Generator().manual_seed(0)
    )
    x = res.sample[0]  # (S, T, D)
    assert x.shape == (20000, 9, 2)
    assert torch.allclose(x.mean(0), res.mean[0], atol=0.03)
    centred = x - x.mean(0)
    cov = torch.einsum("sti,stj->tij", centred, centred) / (x.shape[0] - 1)
    assert torch.allclose(cov, res.cov[0], atol=0.03 * res.cov[0].abs().max())
    cross = torch.einsum("sti,stj->tij", centred[:, :-1], centred[:, 1:]) / (x.shape[0] - 1)
    assert torch.allclose(cross, res.cross[0], atol=0.03 * res.cov[0].abs().max())


def test_samples_are_reparameterised() -> None:
    """Given noise, a sample is a differentiable function of the potentials (the SVAE's
    reparameterisation gradient flows through it)."""
    args = [a.clone().requires_grad_(True) for a in _problem(B=1, T=5, D=2, seed=2)]
    noise = torch.randn(1, 3, 5, 2, generator=torch.Generator().manual_seed(1))
    res = kalman_parallel.kalman_smoother(*args, noise=noise)
    res.sample.sum().backward()
    assert args[-1].grad is not None and args[-1].grad.abs().sum() > 0
