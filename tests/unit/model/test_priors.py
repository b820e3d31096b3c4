"""Conjugate priors: MNIW expectations vs Monte Carlo, SVI with ρ = 1 vs the conjugate posterior."""

import numpy as np
import pytest
import torch
from scipy import stats as sps

from model.priors import (
    MNIW,
    MNIWStats,
    SLDSStats,
    default_prior,
    dirichlet_expected_log,
    dirichlet_kl,
    global_kl,
    mniw_expectations,
    mniw_from_standard,
    mniw_kl,
    mniw_svi_step,
    mniw_to_standard,
    sticky_transition_prior,
    svi_step,
)

# Every test here runs with float64 as the default dtype (restored afterwards).
pytestmark = pytest.mark.usefixtures("float64")


def _std_params(D: int = 2, p: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(D, p))
    a = rng.normal(size=(p, p))
    V = a @ a.T / p + 0.3 * np.eye(p)
    b = rng.normal(size=(D, D))
    S = b @ b.T + np.eye(D)
    nu = D + 4.5
    return M, V, S, nu


def _draw(M, V, S, nu, n, seed):
    rng = np.random.default_rng(seed)
    Q = sps.invwishart(df=nu, scale=S).rvs(size=n, random_state=rng)
    Z = rng.normal(size=(n, *M.shape))
    A = M + np.linalg.cholesky(Q) @ Z @ np.linalg.cholesky(V).T
    return A, Q


def test_mniw_expectations_match_monte_carlo():
    M, V, S, nu = _std_params()
    eta = mniw_from_standard(*(torch.as_tensor(x) for x in (M, V, S)), torch.tensor(nu))
    ex = mniw_expectations(eta)
    A, Q = _draw(M, V, S, nu, 100_000, seed=1)
    Qi = np.linalg.inv(Q)
    mc_EQi = Qi.mean(0)
    mc_EQiA = (Qi @ A).mean(0)
    mc_EAtQiA = (A.transpose(0, 2, 1) @ Qi @ A).mean(0)
    mc_logdet = np.linalg.slogdet(Qi)[1].mean()

    def close(exact, mc, rel):
        exact = exact.numpy()
        assert np.abs(exact - mc).max() <= rel * np.abs(exact).max(), (exact, mc)

    close(ex.EQi, mc_EQi, 0.02)
    close(ex.EQiA, mc_EQiA, 0.03)
    close(ex.EAtQiA, mc_EAtQiA, 0.03)
    assert abs(ex.Elogdet.item() - mc_logdet) < 0.01


def test_standard_natural_round_trip():
    M, V, S, nu = (torch.as_tensor(x) for x in _std_params(seed=3))
    back = mniw_to_standard(mniw_from_standard(M, V, S, nu))
    for a, b in zip(back, (M, V, S, nu), strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_svi_step_with_rho_one_is_the_conjugate_posterior():
    # Bayesian multivariate regression y = A x + ε, ε ~ N(0, Q), with the MNIW prior: the
    # posterior is M_n = (S_yx + M V⁻¹)(S_xx + V⁻¹)⁻¹, V_n = (S_xx + V⁻¹)⁻¹,
    # S_n = S + S_yy + M V⁻¹ Mᵀ − M_n V_n⁻¹ M_nᵀ, ν_n = ν + n (standard closed form).
    M, V, S, nu = (torch.as_tensor(x) for x in _std_params(seed=4))
    prior = mniw_from_standard(M, V, S, nu)
    gen = torch.Generator().manual_seed(0)
    n = 50
    X = torch.randn(n, 3, generator=gen)
    Y = torch.randn(n, 2, generator=gen)
    st = MNIWStats(X.T @ X, X.T @ Y, Y.T @ Y, torch.tensor(float(n)))
    some_eta = mniw_from_standard(M + 1.0, 2 * V, 3 * S, nu + 7)
    post = mniw_to_standard(mniw_svi_step(some_eta, prior, st, rho=1.0, scale=1.0))
    Vinv = torch.linalg.inv(V)
    Vn = torch.linalg.inv(X.T @ X + Vinv)
    Mn = (Y.T @ X + M @ Vinv) @ Vn
    Sn = S + Y.T @ Y + M @ Vinv @ M.T - Mn @ torch.linalg.inv(Vn) @ Mn.T
    assert torch.allclose(post.M, Mn, atol=1e-10)
    assert torch.allclose(post.V, Vn, atol=1e-10)
    assert torch.allclose(post.S, Sn, atol=1e-9)
    assert torch.allclose(post.nu, nu + n)


def test_full_svi_step_rho_one_and_half():
    K, D = 3, 2
    prior = default_prior(K, D)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(K, 40, D + 1, generator=gen)
    Y = torch.randn(K, 40, D, generator=gen)
    dyn = MNIWStats(
        X.transpose(1, 2) @ X, X.transpose(1, 2) @ Y, Y.transpose(1, 2) @ Y, torch.full((K,), 40.0)
    )
    x1 = torch.randn(5, D, generator=gen)
    ini = MNIWStats(torch.full((1, 1), 5.0), x1.sum(0)[None], x1.T @ x1, torch.tensor(5.0))
    st = SLDSStats(torch.tensor([1.0, 2.0, 2.0]), torch.rand(K, K, generator=gen), dyn, ini)
    post = svi_step(prior, prior, st, rho=1.0, scale=2.0)
    assert torch.allclose(post.init, prior.init + 2.0 * st.init_counts)
    assert torch.allclose(post.trans, prior.trans + 2.0 * st.trans_counts)
    assert torch.allclose(post.dynamics.Vinv, prior.dynamics.Vinv + 2.0 * dyn.Sxx)
    assert torch.allclose(post.initial.S_plus, prior.initial.S_plus + 2.0 * ini.Syy)
    half = svi_step(post, prior, st, rho=0.5, scale=2.0)
    assert torch.allclose(half.trans, post.trans)  # already at the fixed point
    assert global_kl(prior, prior).abs() < 1e-9
    assert global_kl(post, prior) > 0


def test_dirichlet_expectation_and_kl():
    alpha = torch.tensor([0.5, 2.0, 7.0])
    rng = np.random.default_rng(0)
    draws = rng.dirichlet(alpha.numpy(), size=200_000)
    mc = np.log(draws).mean(0)
    assert np.allclose(dirichlet_expected_log(alpha).numpy(), mc, atol=0.02)
    beta = torch.tensor([1.0, 1.0, 1.0])
    mc_kl = (
        sps.dirichlet(alpha.numpy()).logpdf(draws.T) - sps.dirichlet(beta.numpy()).logpdf(draws.T)
    ).mean()
    assert abs(dirichlet_kl(alpha, beta).item() - mc_kl) < 0.02


def test_mniw_kl_matches_monte_carlo():
    M, V, S, nu = _std_params(D=2, p=2, seed=5)
    M0, V0, S0, nu0 = _std_params(D=2, p=2, seed=6)
    q = mniw_from_standard(*(torch.as_tensor(x) for x in (M, V, S)), torch.tensor(nu))
    p = mniw_from_standard(*(torch.as_tensor(x) for x in (M0, V0, S0)), torch.tensor(nu0))
    A, Q = _draw(M, V, S, nu, 50_000, seed=2)

    def logpdf(A, Q, M, V, S, nu):
        D, pd = M.shape
        lq = sps.invwishart(df=nu, scale=S).logpdf(Q.transpose(1, 2, 0))
        dA = A - M
        quad = np.trace(
            np.linalg.inv(V) @ dA.transpose(0, 2, 1) @ np.linalg.inv(Q) @ dA, axis1=1, axis2=2
        )
        la = (
            -0.5 * quad
            - 0.5 * D * pd * np.log(2 * np.pi)
            - 0.5 * D * np.linalg.slogdet(V)[1]
            - 0.5 * pd * np.linalg.slogdet(Q)[1]
        )
        return lq + la

    mc = (logpdf(A, Q, M, V, S, nu) - logpdf(A, Q, M0, V0, S0, nu0)).mean()
    kl = mniw_kl(q, p).item()
    assert kl == pytest.approx(mc, rel=0.03, abs=0.05)


def test_sticky_prior_dwell_time():
    K, dwell = 40, 12.0
    a = sticky_transition_prior(K, alpha=0.1, dwell_frames=dwell)
    e_self = a.diagonal() / a.sum(-1)
    assert torch.allclose(1.0 / (1.0 - e_self), torch.full((K,), dwell))
    assert isinstance(default_prior(4, 3).dynamics, MNIW)
