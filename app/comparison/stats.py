"""Statistics for cohort comparisons: pure NumPy/SciPy, no database.

The animal is the unit: every function takes one value (or one vector) per animal and a group
label per animal. Rank tests (Mann–Whitney U for two groups, Kruskal–Wallis with Dunn's post-hoc
for more) use mid-ranks for ties. When groups are small their p-values come from the permutation
distribution: every distinct assignment of the animals to groups of the observed sizes is
enumerated when there are few enough, otherwise a Monte Carlo sample is drawn; in both cases the
p-value counts assignments whose statistic is *at least as extreme* as the observed one (the
observed assignment included), so it is never smaller than one over the number of assignments.

Shapes: ``values`` (N,) float, ``groups`` (N,) int in ``0..G-1``; ``usage`` (N, K) for N animals
and K syllables.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as sps

# Enumerate every assignment up to this many (5+5 animals: 252; 8+8: 12,870; 3x5: 756,756 is
# sampled instead).
MAX_ENUMERATE = 20_000
# Monte Carlo permutations when there are more assignments than that.
N_RESAMPLES = 9_999
# Relative tolerance for "at least as extreme": equal statistics computed in a different order
# may differ in the last bits, and must still count.
_TOL = 1e-9

Statistic = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Ranks and permutation machinery


def midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values`` (N,), ties sharing the mean of their ranks."""
    return np.asarray(sps.rankdata(values, method="average"), dtype=np.float64)


def tie_term(values: np.ndarray) -> float:
    """Σ (t³ − t) over groups of ``t`` tied values (0 without ties)."""
    _, counts = np.unique(values, return_counts=True)
    return float(np.sum(counts.astype(np.float64) ** 3 - counts))


def count_assignments(sizes: Sequence[int]) -> int:
    """Number of distinct ways to split ``sum(sizes)`` animals into groups of these sizes."""
    total = math.factorial(sum(sizes))
    for n in sizes:
        total //= math.factorial(n)
    return total


def label_assignments(sizes: Sequence[int]) -> np.ndarray:
    """Every distinct assignment of ``N = sum(sizes)`` animals to groups of ``sizes``:
    (M, N) int8 labels, M = :func:`count_assignments` (keep it small). Read-only and cached:
    every syllable of a comparison is tested over the same assignments."""
    return _label_assignments(tuple(int(n) for n in sizes))


@lru_cache(maxsize=8)
def _label_assignments(sizes: tuple[int, ...]) -> np.ndarray:
    n = sum(sizes)
    rows: list[np.ndarray] = []

    def fill(labels: np.ndarray, free: tuple[int, ...], g: int) -> None:
        if g == len(sizes) - 1:
            out = labels.copy()
            out[list(free)] = g
            rows.append(out)
            return
        for chosen in itertools.combinations(free, sizes[g]):
            labels[list(chosen)] = g
            rest = tuple(i for i in free if i not in chosen)
            fill(labels, rest, g + 1)

    fill(np.zeros(n, dtype=np.int8), tuple(range(n)), 0)
    out = np.stack(rows)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def random_assignments(groups: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """(n, N) int8 random relabellings of ``groups`` (uniform permutations, seeded), cached
    and read-only."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups, dtype=np.int8)
    out = labels[np.argsort(rng.random((n, len(labels))), axis=1)]
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Permutation:
    """A permutation p-value: ``exact`` when all ``n`` assignments were enumerated, else a
    Monte Carlo estimate ``(b + 1) / (n + 1)`` from ``n`` random ones."""

    p_value: float
    n: int
    exact: bool

    @property
    def method(self) -> str:
        if self.exact:
            return f"exact permutation ({self.n} assignments)"
        return f"Monte Carlo permutation ({self.n} resamples)"


def permutation_test(
    statistic: Statistic,
    groups: np.ndarray,
    *,
    max_enumerate: int = MAX_ENUMERATE,
    n_resamples: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> Permutation:
    """P-value of ``statistic`` (larger = more extreme) under random reassignment of groups.

    ``statistic`` maps (M, N) label matrices to (M,) values; ``groups`` (N,) are the observed
    labels. Counts assignments with a statistic at least as large as the observed one (``>=``,
    with a tiny relative tolerance), the observed assignment included.
    """
    groups = np.asarray(groups)
    sizes = [int(np.sum(groups == g)) for g in range(int(groups.max()) + 1)]
    observed = float(statistic(groups[None, :].astype(np.int8))[0])
    tol = _TOL * max(1.0, abs(observed))
    total = count_assignments(sizes)
    if total <= max_enumerate:
        values = statistic(label_assignments(sizes))
        hits = int(np.sum(values >= observed - tol))
        return Permutation(hits / total, total, True)
    if rng is None:
        # The same seeded relabellings for every test of a comparison (cheap, reproducible).
        perms = random_assignments(tuple(int(g) for g in groups), n_resamples)
        hits = int(np.sum(statistic(perms) >= observed - tol))
    else:
        hits = 0
        for start in range(0, n_resamples, 2_000):
            m = min(2_000, n_resamples - start)
            order = np.argsort(rng.random((m, len(groups))), axis=1)
            hits += int(np.sum(statistic(groups[order].astype(np.int8)) >= observed - tol))
    return Permutation((hits + 1) / (n_resamples + 1), n_resamples, False)


# --------------------------------------------------------------------------------------------
# Two groups: Mann–Whitney U


@dataclass(frozen=True)
class TestResult:
    """One test: its name, statistic, p-value and how the p-value was obtained."""

    test: str
    statistic: float
    p_value: float
    method: str


def _groups_of(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([np.asarray(x, float), np.asarray(y, float)])
    groups = np.concatenate([np.zeros(len(x), int), np.ones(len(y), int)])
    return values, groups


def mann_whitney_u(x: np.ndarray, y: np.ndarray) -> float:
    """U statistic of ``x`` against ``y``: pairs with x > y, ties counting one half."""
    values, _ = _groups_of(x, y)
    ranks = midranks(values)
    n1 = len(x)
    return float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)


def mann_whitney_asymptotic(x: np.ndarray, y: np.ndarray) -> TestResult:
    """Two-sided Mann–Whitney U with the normal approximation, tie correction and continuity
    correction (the same as ``scipy.stats.mannwhitneyu(method="asymptotic")``)."""
    n1, n2 = len(x), len(y)
    values, _ = _groups_of(x, y)
    n = n1 + n2
    u1 = mann_whitney_u(x, y)
    u = max(u1, n1 * n2 - u1)
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - tie_term(values) / (n * (n - 1)))
    if var <= 0:
        return TestResult("Mann–Whitney U", u1, 1.0, "normal approximation")
    z = (u - mu - 0.5) / math.sqrt(var)
    p = min(1.0, 2 * float(sps.norm.sf(z)))
    return TestResult("Mann–Whitney U", u1, p, "normal approximation")


def mann_whitney_permutation(
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_enumerate: int = MAX_ENUMERATE,
    n_resamples: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> TestResult:
    """Two-sided Mann–Whitney U with a permutation p-value: the share of assignments whose
    |U − n1·n2/2| is at least the observed one (exact when they can all be enumerated)."""
    values, groups = _groups_of(x, y)
    ranks = midranks(values)
    n1, n2 = len(x), len(y)
    centre = n1 * n2 / 2

    def stat(labels: np.ndarray) -> np.ndarray:
        r1 = (ranks[None, :] * (labels == 0)).sum(axis=1)
        return np.abs(r1 - n1 * (n1 + 1) / 2 - centre)

    perm = permutation_test(
        stat, groups, max_enumerate=max_enumerate, n_resamples=n_resamples, rng=rng
    )
    return TestResult("Mann–Whitney U", mann_whitney_u(x, y), perm.p_value, perm.method)


# --------------------------------------------------------------------------------------------
# Several groups: Kruskal–Wallis and Dunn


def kruskal_wallis_h(values: np.ndarray, groups: np.ndarray) -> float:
    """The tie-corrected H statistic (as ``scipy.stats.kruskal``)."""
    stat = _kruskal_statistic(np.asarray(values, float), np.asarray(groups))
    return float(stat(np.asarray(groups)[None, :])[0])


def _kruskal_statistic(values: np.ndarray, groups: np.ndarray) -> Statistic:
    ranks = midranks(values)
    n = len(values)
    g_count = int(groups.max()) + 1
    sizes = np.array([np.sum(groups == g) for g in range(g_count)], dtype=np.float64)
    correction = 1.0 - tie_term(values) / (n**3 - n) if n > 1 else 1.0

    def stat(labels: np.ndarray) -> np.ndarray:
        total = np.zeros(labels.shape[0])
        for g in range(g_count):
            r = (ranks[None, :] * (labels == g)).sum(axis=1)
            total += r**2 / sizes[g]
        h = 12.0 / (n * (n + 1)) * total - 3 * (n + 1)
        if correction <= 0:  # every value tied: no evidence at all
            return np.zeros_like(h)
        return np.asarray(h / correction)

    return stat


def kruskal_wallis_asymptotic(values: np.ndarray, groups: np.ndarray) -> TestResult:
    """Kruskal–Wallis H with the χ²(G−1) approximation (as ``scipy.stats.kruskal``)."""
    groups = np.asarray(groups)
    h = kruskal_wallis_h(values, groups)
    dof = int(groups.max())
    return TestResult("Kruskal–Wallis", h, float(sps.chi2.sf(h, dof)), "χ² approximation")


def kruskal_wallis_permutation(
    values: np.ndarray,
    groups: np.ndarray,
    *,
    max_enumerate: int = MAX_ENUMERATE,
    n_resamples: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> TestResult:
    """Kruskal–Wallis H with a permutation p-value (share of assignments with H >= observed)."""
    values = np.asarray(values, float)
    groups = np.asarray(groups)
    perm = permutation_test(
        _kruskal_statistic(values, groups),
        groups,
        max_enumerate=max_enumerate,
        n_resamples=n_resamples,
        rng=rng,
    )
    return TestResult("Kruskal–Wallis", kruskal_wallis_h(values, groups), perm.p_value, perm.method)


@dataclass(frozen=True)
class DunnPair:
    """Dunn's z for groups ``a`` and ``b`` (positive: ``b`` ranks higher), its two-sided
    p-value and the Holm-adjusted p-value over all pairs."""

    a: int
    b: int
    z: float
    p_value: float
    p_adjusted: float


def dunn(values: np.ndarray, groups: np.ndarray) -> list[DunnPair]:
    """Dunn's post-hoc test on the Kruskal–Wallis mid-ranks, with the tie correction
    ``σ² = (N(N+1)/12 − Σ(t³−t)/(12(N−1))) (1/nᵢ + 1/nⱼ)``, Holm-adjusted over pairs."""
    values = np.asarray(values, float)
    groups = np.asarray(groups)
    ranks = midranks(values)
    n = len(values)
    g_count = int(groups.max()) + 1
    sizes = [int(np.sum(groups == g)) for g in range(g_count)]
    mean_rank = [float(ranks[groups == g].mean()) for g in range(g_count)]
    base = n * (n + 1) / 12 - tie_term(values) / (12 * (n - 1))
    pairs: list[tuple[int, int, float, float]] = []
    for a, b in itertools.combinations(range(g_count), 2):
        var = base * (1 / sizes[a] + 1 / sizes[b])
        z = (mean_rank[b] - mean_rank[a]) / math.sqrt(var) if var > 0 else 0.0
        pairs.append((a, b, z, min(1.0, 2 * float(sps.norm.sf(abs(z))))))
    adjusted = holm([p for *_, p in pairs])
    return [DunnPair(a, b, z, p, float(q)) for (a, b, z, p), q in zip(pairs, adjusted, strict=True)]


# --------------------------------------------------------------------------------------------
# Multiple comparisons


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), monotone in p and at most 1.

    ``q_(i) = min_{j >= i} p_(j) · m / j`` over the m p-values that are not NaN; NaNs stay NaN
    (untested hypotheses do not count in m). Rejecting ``q <= α`` controls the FDR at α.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    scaled = pv[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.minimum(q, 1.0)
    result = np.empty(m)
    result[order] = q
    out[ok] = result
    return out


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), monotone and at most 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * (m - np.arange(m))
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


# --------------------------------------------------------------------------------------------
# Effect sizes


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """Cliff's delta of ``y`` over ``x``: P(y > x) − P(y < x) over all pairs, in [−1, 1]
    (positive: ``y`` tends to be larger)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    diff = y[:, None] - x[None, :]
    return float((np.sum(diff > 0) - np.sum(diff < 0)) / diff.size)


@dataclass(frozen=True)
class MeanDifference:
    """``mean(y) − mean(x)`` and its percentile bootstrap CI (animals resampled within each
    group, ``n_boot`` times)."""

    difference: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int


def mean_difference_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 4_000,
    rng: np.random.Generator | None = None,
) -> MeanDifference:
    """Difference in means ``y − x`` with a bootstrap confidence interval over animals."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    rng = rng or np.random.default_rng(0)
    diff = float(y.mean() - x.mean())
    bx = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    by = y[rng.integers(0, len(y), (n_boot, len(y)))].mean(axis=1)
    boots = by - bx
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return MeanDifference(diff, float(low), float(high), level, n_boot)


# --------------------------------------------------------------------------------------------
# A per-variable group comparison (what the service runs per syllable and per transition)


def use_permutation(sizes: Sequence[int], max_enumerate: int = MAX_ENUMERATE) -> bool:
    """Small designs get permutation p-values: all assignments enumerable, or any group under
    10 animals (where the normal and χ² approximations are poor)."""
    return count_assignments(sizes) <= max_enumerate or min(sizes) < 10


def group_test(
    values: np.ndarray,
    groups: np.ndarray,
    *,
    max_enumerate: int = MAX_ENUMERATE,
    n_resamples: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> TestResult:
    """Mann–Whitney U (two groups) or Kruskal–Wallis (more), with a permutation p-value when
    the groups are small (see :func:`use_permutation`), else the asymptotic one."""
    values = np.asarray(values, float)
    groups = np.asarray(groups)
    g_count = int(groups.max()) + 1
    sizes = [int(np.sum(groups == g)) for g in range(g_count)]
    small = use_permutation(sizes, max_enumerate)
    if g_count == 2:
        x, y = values[groups == 0], values[groups == 1]
        if small:
            return mann_whitney_permutation(
                x, y, max_enumerate=max_enumerate, n_resamples=n_resamples, rng=rng
            )
        return mann_whitney_asymptotic(x, y)
    if small:
        return kruskal_wallis_permutation(
            values, groups, max_enumerate=max_enumerate, n_resamples=n_resamples, rng=rng
        )
    return kruskal_wallis_asymptotic(values, groups)


# --------------------------------------------------------------------------------------------
# The whole behaviour: a leave-one-animal-out fingerprint classifier


@dataclass(frozen=True)
class Fingerprint:
    """Leave-one-animal-out nearest-centroid classification of cohort from usage vectors.

    ``predicted`` (N,) group per animal when it was left out; ``accuracy`` the share right;
    ``chance`` the share of the largest group; ``p_value`` from relabelling animals
    (``exact`` over every assignment, or Monte Carlo), ``null_mean`` the mean accuracy under
    relabelling."""

    accuracy: float
    chance: float
    p_value: float
    n_permutations: int
    exact: bool
    null_mean: float
    predicted: list[int] = field(default_factory=list)


def _loo_standardised(features: np.ndarray, standardise: bool) -> np.ndarray:
    """(N, N, K): for each left-out animal i, every animal's features, z-scored with the mean
    and standard deviation of the other N−1 animals when ``standardise`` (no information from
    i leaks in), else as given."""
    n = features.shape[0]
    out = np.empty((n, *features.shape))
    for i in range(n):
        if not standardise:
            out[i] = features
            continue
        train = np.delete(features, i, axis=0)
        mean = train.mean(axis=0)
        std = train.std(axis=0)
        scale = np.where(std > 1e-12, std, np.inf)  # constant features carry no weight
        out[i] = (features - mean) / scale
    return out


def _loo_correct(z: np.ndarray, labels: np.ndarray, g_count: int) -> np.ndarray:
    """(M,) number of animals classified right for each of M label rows (M, N)."""
    m, n = labels.shape
    correct = np.zeros(m, dtype=np.int64)
    for i in range(n):
        onehot = (labels[:, :, None] == np.arange(g_count)[None, None, :]).astype(np.float64)
        onehot[:, i, :] = 0.0  # the left-out animal is not in any centroid
        counts = onehot.sum(axis=1)  # (M, G)
        sums = np.einsum("mng,nk->mgk", onehot, z[i])
        centroids = sums / np.maximum(counts, 1)[:, :, None]
        dist = ((centroids - z[i, i][None, None, :]) ** 2).sum(axis=2)
        dist = np.where(counts > 0, dist, np.inf)
        correct += np.argmin(dist, axis=1) == labels[:, i]
    return correct


def fingerprint(
    features: np.ndarray,
    groups: np.ndarray,
    *,
    max_enumerate: int = 5_000,
    n_resamples: int = 999,
    standardise: bool = False,
    rng: np.random.Generator | None = None,
) -> Fingerprint:
    """Predict each animal's group from its feature vector (``features`` (N, K)) by the
    nearest (Euclidean) group centroid of the other animals; with ``standardise`` features are
    z-scored within each fold. The p-value counts relabellings whose accuracy is at least the
    observed one.

    For usage fractions pass ``sqrt(usage)`` unstandardised (Hellinger geometry): the square
    root roughly equalises the sampling noise of rare and common syllables, whereas z-scoring
    would give a syllable that is pure noise as much weight as one that differs."""
    features = np.asarray(features, float)
    groups = np.asarray(groups)
    g_count = int(groups.max()) + 1
    z = _loo_standardised(features, standardise)
    observed = int(_loo_correct(z, groups[None, :], g_count)[0])
    n = len(groups)
    sizes = [int(np.sum(groups == g)) for g in range(g_count)]
    predicted = _loo_predictions(z, groups, g_count)

    def stat(labels: np.ndarray) -> np.ndarray:
        out = np.empty(labels.shape[0])
        for start in range(0, labels.shape[0], 500):
            out[start : start + 500] = _loo_correct(z, labels[start : start + 500], g_count)
        return out

    perm = permutation_test(
        stat, groups, max_enumerate=max_enumerate, n_resamples=n_resamples, rng=rng
    )
    # The mean accuracy under relabelling (the classifier's real chance level with LOO).
    null_rng = np.random.default_rng(1)
    sample = (
        label_assignments(sizes)
        if count_assignments(sizes) <= max_enumerate
        else groups[np.argsort(null_rng.random((min(n_resamples, 500), n)), axis=1)]
    )
    null_mean = float(stat(sample.astype(np.int8)).mean() / n)
    return Fingerprint(
        accuracy=observed / n,
        chance=max(sizes) / n,
        p_value=perm.p_value,
        n_permutations=perm.n,
        exact=perm.exact,
        null_mean=null_mean,
        predicted=predicted,
    )


def _loo_predictions(z: np.ndarray, groups: np.ndarray, g_count: int) -> list[int]:
    n = len(groups)
    out = []
    for i in range(n):
        keep = np.arange(n) != i
        best, best_d = -1, np.inf
        for g in range(g_count):
            members = keep & (groups == g)
            if not members.any():
                continue
            d = float(((z[i, members].mean(axis=0) - z[i, i]) ** 2).sum())
            if d < best_d:
                best, best_d = g, d
        out.append(best)
    return out


def binomial_coefficient(n: int, k: int) -> int:
    """n choose k (exposed for the methods text and tests)."""
    return int(special.comb(n, k, exact=True))
