"""Baselines the SVAE must beat, all on PCA of the same egocentric crops.

* k-means on the principal components, frame by frame;
* a Gaussian HMM (full covariances, sticky Dirichlet prior on the transitions), EM;
* a MoSeq-style sticky autoregressive HMM: each state has its own linear dynamics
  ``x_t = A_k [x_{t-1}; ...; x_{t-L}; 1] + ε``, ``ε ~ N(0, Q_k)``, fitted by EM with a sticky
  Dirichlet prior on the transitions and a ridge prior on ``A_k`` (MAP estimates; MoSeq itself
  samples a weak-limit HDP by Gibbs. This is our own code, not MoSeq's, whose licence forbids
  commercial use).

Common API: ``fit_predict(features, n_states, *, seed=0)`` where ``features`` is (T, d) or a
list of (T_i, d) arrays (one per session), returning labels of the same shape(s). Decoding is
Viterbi for the HMMs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from model import hmm
from model.metrics import summary

Features = np.ndarray | Sequence[np.ndarray]


def _as_list(features: Features) -> tuple[list[np.ndarray], bool]:
    if isinstance(features, np.ndarray) and features.ndim == 2:
        return [features.astype(np.float64)], True
    seqs = [np.asarray(f, dtype=np.float64) for f in features]
    if not seqs or any(s.ndim != 2 for s in seqs):
        raise ValueError("features must be (T, d) or a non-empty list of (T_i, d) arrays.")
    return seqs, False


def _split(flat: np.ndarray, seqs: list[np.ndarray], single: bool) -> np.ndarray | list:
    out, i = [], 0
    for s in seqs:
        out.append(flat[i : i + len(s)])
        i += len(s)
    return out[0] if single else out


def pca_features(
    crops: np.ndarray | Sequence[np.ndarray],
    n_components: int = 10,
    *,
    max_fit_frames: int = 20000,
    seed: int = 0,
) -> np.ndarray | list[np.ndarray]:
    """Principal components of flattened crops (T, S, S) (or a list of them), fitted on up to
    ``max_fit_frames`` frames spread over all sessions. Returns (T, n_components) per input."""
    single = isinstance(crops, np.ndarray) and crops.ndim == 3
    seqs = [np.asarray(crops)] if single else [np.asarray(c) for c in crops]
    flat = [s.reshape(len(s), -1).astype(np.float32) for s in seqs]
    allf = np.concatenate(flat)
    rng = np.random.default_rng(seed)
    fit = allf if len(allf) <= max_fit_frames else allf[rng.choice(len(allf), max_fit_frames)]
    pca = PCA(n_components=min(n_components, *fit.shape), random_state=seed).fit(fit)
    out = [pca.transform(f) for f in flat]
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# k-means


def kmeans_fit_predict(
    features: Features, n_states: int, *, seed: int = 0
) -> np.ndarray | list[np.ndarray]:
    """k-means on single frames: no notion of time."""
    seqs, single = _as_list(features)
    x = np.concatenate(seqs)
    labels = KMeans(n_clusters=n_states, n_init=4, random_state=seed).fit_predict(x)
    return _split(labels, seqs, single)


# --------------------------------------------------------------------------------------------
# HMM machinery shared by the Gaussian HMM and the AR-HMM


def forward_backward(
    log_lik: np.ndarray, log_trans: np.ndarray, log_init: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Posterior marginals of one HMM chain, by the engine's :func:`model.hmm.forward_backward`
    in float64.

    ``log_lik`` (T, K) per-frame emission log-likelihoods, ``log_trans`` (K, K) with rows
    "from", ``log_init`` (K,). Returns ``gamma`` (T, K), the expected transition counts
    ``xi`` (K, K) summed over t, and the log marginal likelihood.
    """
    with hmm.one_cpu_thread(torch.device("cpu")):
        res = hmm.forward_backward(_t(log_init), _t(log_trans), _t(log_lik)[None])
    return res.gamma[0].numpy(), res.pair_counts[0].numpy(), float(res.log_z[0])


def viterbi(log_lik: np.ndarray, log_trans: np.ndarray, log_init: np.ndarray) -> np.ndarray:
    """Most probable state path (T,) of an HMM (same inputs as :func:`forward_backward`)."""
    with hmm.one_cpu_thread(torch.device("cpu")):
        return hmm.viterbi(_t(log_init), _t(log_trans), _t(log_lik)[None])[0].numpy()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def _gauss_loglik(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x_t | mean, cov) for x (T, d), mean (T, d) or (d,), cov (d, d)."""
    d = x.shape[1]
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    return -0.5 * (z * z).sum(axis=0) - np.log(np.diag(chol)).sum() - 0.5 * d * np.log(2 * np.pi)


def _sticky_transitions(xi: np.ndarray, alpha: float, kappa: float) -> np.ndarray:
    """MAP transition matrix under rows ~ Dir(alpha + kappa·e_k): the sticky HMM's prior."""
    k = xi.shape[0]
    counts = xi + (alpha - 1.0) + kappa * np.eye(k)
    counts = np.maximum(counts, 1e-12)
    return np.log(counts / counts.sum(axis=1, keepdims=True))


class _EMHMM:
    """EM over several sequences; subclasses supply emission log-likelihoods and M-steps."""

    def __init__(self, n_states: int, *, stickiness: float, n_iter: int, seed: int) -> None:
        self.k = n_states
        self.stickiness = stickiness
        self.n_iter = n_iter
        self.seed = seed
        self.log_trans = np.log(np.full((n_states, n_states), 1.0 / n_states))
        self.log_init = np.log(np.full(n_states, 1.0 / n_states))
        self.log_likelihoods: list[float] = []

    def _loglik(self, x: np.ndarray) -> np.ndarray:  # (T, K)
        raise NotImplementedError

    def _m_step(self, seqs: list[np.ndarray], gammas: list[np.ndarray]) -> None:
        raise NotImplementedError

    def _init(self, seqs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def fit(self, seqs: list[np.ndarray]) -> _EMHMM:
        total = sum(len(s) for s in seqs)
        # κ in units of frames per state: stickiness 1 weighs as much as the data of a state.
        kappa = self.stickiness * total / self.k
        gammas = self._init(seqs)
        self._m_step(seqs, gammas)
        prev = -np.inf
        for _ in range(self.n_iter):
            xi_sum = np.zeros((self.k, self.k))
            init_sum = np.zeros(self.k)
            gammas = []
            ll = 0.0
            for x in seqs:
                g, xi, lz = forward_backward(self._loglik(x), self.log_trans, self.log_init)
                gammas.append(g)
                xi_sum += xi
                init_sum += g[0]
                ll += lz
            self.log_likelihoods.append(ll)
            self.log_trans = _sticky_transitions(xi_sum, 1.0 + 1.0 / self.k, kappa)
            self.log_init = np.log((init_sum + 1.0) / (init_sum + 1.0).sum())
            self._m_step(seqs, gammas)
            if abs(ll - prev) < 1e-4 * abs(ll):
                break
            prev = ll
        return self

    def predict(self, seqs: list[np.ndarray]) -> list[np.ndarray]:
        return [viterbi(self._loglik(x), self.log_trans, self.log_init) for x in seqs]


def _kmeans_gammas(seqs: list[np.ndarray], k: int, seed: int, feats: list[np.ndarray]) -> list:
    labels = KMeans(n_clusters=k, n_init=2, random_state=seed).fit_predict(np.concatenate(feats))
    out, i = [], 0
    for s in seqs:
        g = np.full((len(s), k), 1e-3)
        g[np.arange(len(s)), labels[i : i + len(s)]] = 1.0
        out.append(g / g.sum(axis=1, keepdims=True))
        i += len(s)
    return out


class GaussianHMM(_EMHMM):
    """HMM with a full-covariance Gaussian per state, initialised by k-means."""

    def _init(self, seqs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.concatenate(seqs)
        self.reg = 1e-3 * np.diag(np.cov(x.T)).mean() * np.eye(x.shape[1])
        return _kmeans_gammas(seqs, self.k, self.seed, seqs)

    def _m_step(self, seqs: list[np.ndarray], gammas: list[np.ndarray]) -> None:
        x = np.concatenate(seqs)
        g = np.concatenate(gammas)
        n = g.sum(axis=0) + 1e-9
        self.means = (g.T @ x) / n[:, None]
        self.covs = np.empty((self.k, x.shape[1], x.shape[1]))
        for j in range(self.k):
            r = x - self.means[j]
            self.covs[j] = (g[:, j, None] * r).T @ r / n[j] + self.reg

    def _loglik(self, x: np.ndarray) -> np.ndarray:
        return np.stack(
            [_gauss_loglik(x, self.means[j], self.covs[j]) for j in range(self.k)], axis=1
        )


class ARHMM(_EMHMM):
    """Sticky autoregressive HMM (MoSeq-style) with ``lags`` lags and an affine term.

    The first ``lags`` frames of each sequence are scored by one shared Gaussian (their past is
    unknown). Initialised as svae.md §7.6 suggests: k-means on ``[x_t, x_t - x_{t-1}]``, then
    least squares per cluster.
    """

    def __init__(
        self,
        n_states: int,
        *,
        lags: int,
        stickiness: float,
        n_iter: int,
        seed: int,
        tied: bool = False,
    ) -> None:
        super().__init__(n_states, stickiness=stickiness, n_iter=n_iter, seed=seed)
        self.lags = lags
        self.tied = tied

    def _design(self, x: np.ndarray) -> np.ndarray:
        """Regressors (T, d·lags + 1): previous ``lags`` frames and a 1; zeros before t=lags."""
        t_len, d = x.shape
        out = np.zeros((t_len, d * self.lags + 1))
        for lag in range(1, self.lags + 1):
            out[lag:, (lag - 1) * d : lag * d] = x[:-lag]
        out[:, -1] = 1.0
        return out

    def _init(self, seqs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.concatenate(seqs)
        self.d = x.shape[1]
        self.mean0, self.cov0 = x.mean(axis=0), np.cov(x.T) + 1e-6 * np.eye(self.d)
        self.reg_q = 1e-3 * np.diag(self.cov0).mean() * np.eye(self.d)
        feats = [
            np.hstack([s, np.vstack([np.zeros((1, s.shape[1])), np.diff(s, axis=0)])]) for s in seqs
        ]
        return _kmeans_gammas(seqs, self.k, self.seed, feats)

    def _m_step(self, seqs: list[np.ndarray], gammas: list[np.ndarray]) -> None:
        p = self.d * self.lags + 1
        xx = np.zeros((self.k, p, p))
        xy = np.zeros((self.k, p, self.d))
        yy = np.zeros((self.k, self.d, self.d))
        n = np.zeros(self.k)
        for x, g in zip(seqs, gammas, strict=True):
            z, y, w = self._design(x)[self.lags :], x[self.lags :], g[self.lags :]
            for j in range(self.k):
                zw = z * w[:, j, None]
                xx[j] += zw.T @ z
                xy[j] += zw.T @ y
                yy[j] += (y * w[:, j, None]).T @ y
                n[j] += w[:, j].sum()
        # Ridge prior on the dynamics (MNIW mean 0 would shrink to "no motion"; shrink to
        # "stay where you were" instead: identity on lag 1).
        prior_m = np.zeros((p, self.d))
        prior_m[: self.d] = np.eye(self.d)
        lam = 1e-2 * np.eye(p) * max(1.0, n.mean() * 1e-3)
        self.A = np.empty((self.k, p, self.d))
        self.Q = np.empty((self.k, self.d, self.d))
        for j in range(self.k):
            a = np.linalg.solve(xx[j] + lam, xy[j] + lam @ prior_m)
            self.A[j] = a
            resid = yy[j] - a.T @ xy[j] - xy[j].T @ a + a.T @ xx[j] @ a
            q = (resid + resid.T) / 2 / (n[j] + 1e-9) + self.reg_q
            # Guard against a state with almost no frames: borrow the global scatter.
            if n[j] < self.d + 2:
                q = self.cov0.copy()
            self.Q[j] = q
        if self.tied:
            # One noise covariance for all states: states then differ only in their dynamics,
            # not in how noisy they claim to be, which otherwise makes labels flicker.
            self.Q[:] = np.einsum("k,kij->ij", n, self.Q) / max(n.sum(), 1e-9)

    def _loglik(self, x: np.ndarray) -> np.ndarray:
        z = self._design(x)
        out = np.empty((len(x), self.k))
        head = _gauss_loglik(x[: self.lags], self.mean0, self.cov0)
        for j in range(self.k):
            pred = z[self.lags :] @ self.A[j]
            out[self.lags :, j] = _gauss_loglik(x[self.lags :], pred, self.Q[j])
            out[: self.lags, j] = head
        return out


def gaussian_hmm_fit_predict(
    features: Features,
    n_states: int,
    *,
    seed: int = 0,
    stickiness: float = 1000.0,
    n_iter: int = 30,
) -> np.ndarray | list[np.ndarray]:
    """Sticky Gaussian HMM by EM, Viterbi labels (``stickiness``: see arhmm_fit_predict)."""
    seqs, single = _as_list(features)
    model = GaussianHMM(n_states, stickiness=stickiness, n_iter=n_iter, seed=seed).fit(seqs)
    labels = model.predict(seqs)
    return labels[0] if single else labels


def arhmm_fit_predict(
    features: Features,
    n_states: int,
    *,
    seed: int = 0,
    lags: int = 3,
    stickiness: float = 1000.0,
    n_iter: int = 30,
    tied: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """MoSeq-style sticky AR-HMM by EM, Viterbi labels.

    The sticky bonus κ is ``stickiness`` times the frames per state. Per-frame emission
    likelihoods of 10 PCs differ by tens of nats, so only a large κ keeps states from
    flickering; as MoSeq does, it is set for plausible syllable lengths: 1000 gives median
    bouts of 0.4-0.5 s on the synthetic sessions (1 gives 0.13 s and a lower ARI). ``tied``
    shares one noise covariance across states.
    """
    seqs, single = _as_list(features)
    if min(len(s) for s in seqs) <= lags:
        raise ValueError(f"Each sequence needs more than {lags} frames for an AR({lags}) model.")
    model = ARHMM(
        n_states, lags=lags, stickiness=stickiness, n_iter=n_iter, seed=seed, tied=tied
    ).fit(seqs)
    labels = model.predict(seqs)
    return labels[0] if single else labels


#: Name -> fit_predict, in the order the benchmark prints them.
BASELINES: dict[str, Callable[..., np.ndarray | list[np.ndarray]]] = {
    "kmeans": kmeans_fit_predict,
    "gaussian_hmm": gaussian_hmm_fit_predict,
    "ar_hmm": arhmm_fit_predict,
}


def compare(
    features: Features,
    truth: np.ndarray | Sequence[np.ndarray] | None,
    n_states: int,
    *,
    fps: float,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Run every baseline on the same features; per method the figures of
    :func:`model.metrics.summary` plus ``seconds`` (wall time of fitting and decoding)."""
    results = {}
    for name, fit_predict in BASELINES.items():
        t0 = time.perf_counter()
        labels = fit_predict(features, n_states, seed=seed)
        seconds = time.perf_counter() - t0
        results[name] = summary(truth, labels, fps) | {"seconds": seconds}
    return results
