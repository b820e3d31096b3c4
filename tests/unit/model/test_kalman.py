"""Kalman filter/smoother/sampler against a dense block-tridiagonal solve (svae.md §7.9 test 1)."""

import math

import pytest
import torch

from model.kalman import kalman_smoother, second_moments

# Every test here runs with float64 as the default dtype (restored afterwards).
pytestmark = pytest.mark.usefixtures("float64")


def _random_spd(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    D = shape[-1]
    A = torch.randn(*shape, generator=gen)
    return scale * (A @ A.transpose(-1, -2) / D + 0.5 * torch.eye(D))


def _problem(B: int = 2, T: int = 5, D: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    J0 = _random_spd(gen, B, D, D)
    h0 = torch.randn(B, D, generator=gen)
    # Pair potentials from a proper Gaussian transition keep the whole precision positive definite.
    F = 0.5 * torch.randn(B, T - 1, D, D, generator=gen)
    Qi = _random_spd(gen, B, T - 1, D, D)
    J11 = F.transpose(-1, -2) @ Qi @ F + 0.1 * _random_spd(gen, B, T - 1, D, D)
    J12 = -F.transpose(-1, -2) @ Qi
    J22 = Qi
    h1 = torch.randn(B, T - 1, D, generator=gen)
    h2 = torch.randn(B, T - 1, D, generator=gen)
    R = torch.rand(B, T, D, generator=gen) + 0.1
    r = torch.randn(B, T, D, generator=gen)
    return J0, h0, J11, J12, J22, h1, h2, R, r


def _dense(J0, h0, J11, J12, J22, h1, h2, R, r):
    B, T, D = r.shape
    J = torch.zeros(B, T * D, T * D)
    h = torch.zeros(B, T * D)
    for t in range(T):
        s = slice(t * D, (t + 1) * D)
        J[:, s, s] += torch.diag_embed(R[:, t])
        h[:, s] += r[:, t]
    J[:, :D, :D] += J0
    h[:, :D] += h0
    for t in range(T - 1):
        a, b = slice(t * D, (t + 1) * D), slice((t + 1) * D, (t + 2) * D)
        J[:, a, a] += J11[:, t]
        J[:, b, b] += J22[:, t]
        J[:, a, b] += J12[:, t]
        J[:, b, a] += J12[:, t].transpose(-1, -2)
        h[:, a] += h1[:, t]
        h[:, b] += h2[:, t]
    Sigma = torch.linalg.inv(J)
    mu = (Sigma @ h.unsqueeze(-1)).squeeze(-1)
    log_z = 0.5 * (h * mu).sum(-1) - 0.5 * torch.logdet(J) + 0.5 * T * D * math.log(2 * math.pi)
    return Sigma, mu, log_z


def test_kalman_matches_dense_solve():
    B, T, D = 2, 5, 3
    args = _problem(B, T, D)
    res = kalman_smoother(*args)
    Sigma, mu, log_z = _dense(*args)
    assert torch.allclose(res.mean, mu.view(B, T, D), atol=1e-10, rtol=0)
    for t in range(T):
        s = slice(t * D, (t + 1) * D)
        assert torch.allclose(res.cov[:, t], Sigma[:, s, s], atol=1e-10, rtol=0)
    for t in range(T - 1):
        a, b = slice(t * D, (t + 1) * D), slice((t + 1) * D, (t + 2) * D)
        assert torch.allclose(res.cross[:, t], Sigma[:, a, b], atol=1e-10, rtol=0)
    assert torch.allclose(res.log_z, log_z, atol=1e-10, rtol=0)


def test_second_moments():
    args = _problem(seed=3)
    res = kalman_smoother(*args)
    Exx, Exn = second_moments(res)
    mu = res.mean
    assert torch.allclose(Exx[:, 2], res.cov[:, 2] + mu[:, 2, :, None] * mu[:, 2, None, :])
    assert torch.allclose(Exn[:, 1], res.cross[:, 1] + mu[:, 1, :, None] * mu[:, 2, None, :])


def test_backward_sample_has_the_posterior_law():
    # Samples are affine in the noise: x̂ = μ + M ε. Feeding ε = 0 gives μ, feeding the unit
    # vectors gives M's columns, and M Mᵀ must be the dense posterior covariance.
    B, T, D = 2, 5, 3
    args = _problem(B, T, D, seed=1)
    Sigma, mu, _ = _dense(*args)
    zero = torch.zeros(B, 1, T, D)
    x0 = kalman_smoother(*args, noise=zero).sample[:, 0].reshape(B, T * D)
    assert torch.allclose(x0, mu, atol=1e-10, rtol=0)
    basis = torch.eye(T * D).view(T * D, T, D).expand(B, T * D, T, D)
    cols = kalman_smoother(*args, noise=basis).sample.reshape(B, T * D, T * D) - x0[:, None]
    M = cols.transpose(-1, -2)
    assert torch.allclose(M @ M.transpose(-1, -2), Sigma, atol=1e-10, rtol=0)


def test_single_step_and_gradients():
    B, D = 3, 2
    args = _problem(B, 1, D, seed=2)
    res = kalman_smoother(*args)
    _, mu, log_z = _dense(*args)
    assert torch.allclose(res.mean[:, 0], mu)
    assert torch.allclose(res.log_z, log_z)
    # log Z is differentiable in the node potentials: d logZ / d r = E[x].
    J0, h0, J11, J12, J22, h1, h2, R, r = _problem(2, 4, 2, seed=5)
    r = r.clone().requires_grad_(True)
    res = kalman_smoother(J0, h0, J11, J12, J22, h1, h2, R, r)
    (grad,) = torch.autograd.grad(res.log_z.sum(), r)
    assert torch.allclose(grad, res.mean.detach(), atol=1e-10)
