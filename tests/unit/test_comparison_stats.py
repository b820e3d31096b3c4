"""Cohort statistics against SciPy and against cases worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from app.comparison import stats


def brute_force_mwu_p(x: list[float], y: list[float]) -> float:
    """Two-sided permutation p of |U - n1 n2 / 2| by listing every split (obviously right)."""
    values = np.array(x + y, float)
    n1 = len(x)

    def u(first: np.ndarray, second: np.ndarray) -> float:
        return float(sum((a > b) + 0.5 * (a == b) for a in first for b in second))

    centre = n1 * len(y) / 2
    observed = abs(u(np.array(x), np.array(y)) - centre)
    hits = total = 0
    for chosen in itertools.combinations(range(len(values)), n1):
        rest = [i for i in range(len(values)) if i not in chosen]
        total += 1
        hits += abs(u(values[list(chosen)], values[rest]) - centre) >= observed - 1e-12
    return hits / total


# --------------------------------------------------------------------------------------------
# Mann–Whitney U


def test_exact_permutation_on_tiny_groups_by_hand():
    # 3 vs 3, perfectly separated: only the observed split and its mirror are as extreme.
    r = stats.mann_whitney_permutation([1, 2, 3], [4, 5, 6])
    assert r.p_value == pytest.approx(2 / 20) and "20 assignments" in r.method
    assert r.statistic == 0.0
    # 2 vs 2 with one overlap: U = 1 of 4; |U - 2| = 1 is matched by U in {0, 1, 3, 4}:
    # splits {1,2}{3,4}, {1,3}{2,4}, {2,4}{1,3}, {3,4}{1,2} -> 4 of 6.
    r = stats.mann_whitney_permutation([1, 3], [2, 4])
    assert r.p_value == pytest.approx(4 / 6)
    # Identical groups: every split is at least as extreme -> p = 1 (never below it).
    assert stats.mann_whitney_permutation([5, 5], [5, 5]).p_value == 1.0


def test_at_least_as_extreme_counts_ties_in_the_statistic():
    # 1 vs 3: the observed U = 0 (x below all). Extreme |U - 1.5| = 1.5 also for U = 3 (x above
    # all): 2 of 4 splits. A strict ">" would give 0 of 4.
    r = stats.mann_whitney_permutation([1], [2, 3, 4])
    assert r.p_value == pytest.approx(2 / 4)


@pytest.mark.parametrize("seed", range(6))
def test_exact_permutation_matches_scipy_exact_without_ties(seed):
    rng = np.random.default_rng(seed)
    n1, n2 = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    x, y = rng.normal(size=n1), rng.normal(size=n2) + rng.uniform(0, 2)
    ours = stats.mann_whitney_permutation(x, y)
    ref = sps.mannwhitneyu(x, y, alternative="two-sided", method="exact")
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_permutation_with_ties_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    x = [float(v) for v in rng.integers(0, 4, size=4)]
    y = [float(v) for v in rng.integers(1, 5, size=5)]
    assert stats.mann_whitney_permutation(x, y).p_value == pytest.approx(
        brute_force_mwu_p(x, y), rel=1e-12
    )
    # SciPy's own permutation test agrees (it also counts ">=" with a tolerance).
    ref = sps.permutation_test(
        (np.array(x), np.array(y)),
        lambda a, b: abs(sps.mannwhitneyu(a, b).statistic - len(a) * len(b) / 2),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,
    )
    assert stats.mann_whitney_permutation(x, y).p_value == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("seed", range(5))
def test_asymptotic_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=15), 1)
    y = np.round(rng.normal(size=18) + 0.4, 1)
    ours = stats.mann_whitney_asymptotic(x, y)
    ref = sps.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_monte_carlo_uses_b_plus_one_over_m_plus_one():
    x = np.arange(12.0)
    y = np.arange(12.0) + 100  # perfectly separated: no random split is as extreme...
    r = stats.mann_whitney_permutation(x, y, max_enumerate=10, n_resamples=199)
    assert r.method == "Monte Carlo permutation (199 resamples)"
    # ...except by chance the mirror (probability 2 / C(24,12) ~ 7e-7): b = 0, p = 1/200.
    assert r.p_value == pytest.approx(1 / 200)
    # Under the null the estimate is close to the exact value.
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=7), rng.normal(size=7)
    exact = stats.mann_whitney_permutation(a, b).p_value
    mc = stats.mann_whitney_permutation(a, b, max_enumerate=10, n_resamples=20_000).p_value
    assert mc == pytest.approx(exact, abs=0.015)


# --------------------------------------------------------------------------------------------
# Kruskal–Wallis and Dunn


@pytest.mark.parametrize("seed", range(5))
def test_kruskal_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], [5, 6, 7])
    values = np.round(rng.normal(size=len(groups)) + 0.5 * groups, 1)
    ours = stats.kruskal_wallis_asymptotic(values, groups)
    ref = sps.kruskal(*[values[groups == g] for g in range(3)])
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_kruskal_permutation_by_hand():
    # Groups of 1, 1 and 2 animals: 4! / (1! 1! 2!) = 12 assignments; count those with H at
    # least the observed one by listing the distinct orderings of the labels.
    values = np.array([1.0, 4.0, 2.0, 3.0])
    groups = np.array([0, 1, 2, 2])
    h_obs = stats.kruskal_wallis_h(values, groups)
    hs = []
    for perm in set(itertools.permutations(groups.tolist())):
        hs.append(stats.kruskal_wallis_h(values, np.array(perm)))
    assert len(hs) == 12
    expected = sum(h >= h_obs - 1e-12 for h in hs) / 12
    r = stats.kruskal_wallis_permutation(values, groups)
    assert r.p_value == pytest.approx(expected) and r.p_value >= 1 / 12
    assert "12 assignments" in r.method


def test_dunn_by_hand():
    # No ties: ranks 1..9; groups of 3 with mean ranks 2, 5, 8.
    values = np.arange(9.0)
    groups = np.repeat([0, 1, 2], 3)
    pairs = stats.dunn(values, groups)
    se = math.sqrt(9 * 10 / 12 * (1 / 3 + 1 / 3))
    z = {(p.a, p.b): p for p in pairs}
    assert z[(0, 1)].z == pytest.approx(3 / se)
    assert z[(0, 2)].z == pytest.approx(6 / se)
    assert z[(0, 2)].p_value == pytest.approx(2 * sps.norm.sf(6 / se))
    # Holm: the smallest p times 3, the next times 2 (monotone), the last times 1.
    ps = sorted(p.p_value for p in pairs)
    adj = sorted(p.p_adjusted for p in pairs)
    assert adj[0] == pytest.approx(3 * ps[0])
    assert adj[1] == pytest.approx(max(3 * ps[0], 2 * ps[1]))


def test_dunn_tie_correction():
    values = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3], float)
    groups = np.repeat([0, 1, 2], 3)
    ranks = sps.rankdata(values)
    n = 9
    ties = 3**3 - 3 + 2**3 - 2 + 4**3 - 4
    var = (n * (n + 1) / 12 - ties / (12 * (n - 1))) * (2 / 3)
    expected = (ranks[6:].mean() - ranks[:3].mean()) / math.sqrt(var)
    pair = next(p for p in stats.dunn(values, groups) if (p.a, p.b) == (0, 2))
    assert pair.z == pytest.approx(expected)


def test_group_test_picks_the_test_and_method():
    rng = np.random.default_rng(0)
    two = stats.group_test(rng.normal(size=10), np.repeat([0, 1], 5))
    assert two.test == "Mann–Whitney U" and two.method == "exact permutation (252 assignments)"
    big = stats.group_test(rng.normal(size=30), np.repeat([0, 1], 15))
    assert big.method == "normal approximation"
    mid = stats.group_test(rng.normal(size=18), np.repeat([0, 1], 9))  # 48,620 > 20,000
    assert mid.method == "Monte Carlo permutation (9999 resamples)"
    three = stats.group_test(rng.normal(size=9), np.repeat([0, 1, 2], 3))
    assert three.test == "Kruskal–Wallis" and three.method == "exact permutation (1680 assignments)"
    many = stats.group_test(rng.normal(size=36), np.repeat([0, 1, 2], 12))
    assert many.method == "χ² approximation"


# --------------------------------------------------------------------------------------------
# Benjamini–Hochberg


def test_benjamini_hochberg_by_hand():
    # m = 5. Sorted p: .001 .008 .039 .041 .6 -> p*m/rank: .005 .02 .0650 .05125 .6;
    # running minimum from the top: .005 .02 .05125 .05125 .6.
    p = [0.041, 0.001, 0.6, 0.039, 0.008]
    q = stats.benjamini_hochberg(p)
    assert q == pytest.approx([0.05125, 0.005, 0.6, 0.05125, 0.02])


def test_benjamini_hochberg_matches_scipy_is_monotone_and_capped():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10)])
    q = stats.benjamini_hochberg(p)
    assert q == pytest.approx(sps.false_discovery_control(p, method="bh"))
    order = np.argsort(p)
    assert np.all(np.diff(q[order]) >= -1e-15)  # monotone in p
    assert np.all(q >= p) and np.all(q <= 1)
    assert stats.benjamini_hochberg([0.9, 0.95, 1.0]) == pytest.approx([1.0, 1.0, 1.0])


def test_benjamini_hochberg_leaves_untested_out_of_m():
    q = stats.benjamini_hochberg([0.01, np.nan, 0.04])
    assert q[0] == pytest.approx(0.02) and np.isnan(q[1]) and q[2] == pytest.approx(0.04)
    assert np.isnan(stats.benjamini_hochberg([np.nan])).all()


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# --------------------------------------------------------------------------------------------
# Effect sizes


def test_cliffs_delta_by_hand():
    # y over x: pairs (x, y): 3 of 6 with y > x, 2 with y < x, 1 tie -> (3 - 2) / 6.
    x, y = [1, 3], [2, 3, 0]
    # y=2: >1, <3 ; y=3: >1, =3 ; y=0: <1, <3 -> greater 2, less 3 -> -1/6
    assert stats.cliffs_delta(x, y) == pytest.approx((2 - 3) / 6)
    assert stats.cliffs_delta([1, 2], [3, 4]) == 1.0
    assert stats.cliffs_delta([3, 4], [1, 2]) == -1.0
    assert stats.cliffs_delta([1, 1], [1, 1]) == 0.0


def test_cliffs_delta_is_rescaled_u():
    rng = np.random.default_rng(2)
    x, y = np.round(rng.normal(size=9), 1), np.round(rng.normal(size=11), 1)
    u_y = sps.mannwhitneyu(y, x).statistic  # pairs with y > x, ties one half
    assert stats.cliffs_delta(x, y) == pytest.approx(2 * u_y / (9 * 11) - 1)


def test_bootstrap_ci_covers_the_difference_and_shrinks_with_more_animals():
    rng = np.random.default_rng(4)
    small = stats.mean_difference_ci(rng.normal(0, 1, 5), rng.normal(1, 1, 5))
    large = stats.mean_difference_ci(rng.normal(0, 1, 200), rng.normal(1, 1, 200))
    assert small.ci_low <= small.difference <= small.ci_high
    assert large.ci_low < 1.0 < large.ci_high and large.ci_low > 0.5
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)
    same = stats.mean_difference_ci(np.ones(4), np.ones(4) * 3)
    assert (same.difference, same.ci_low, same.ci_high) == (2.0, 2.0, 2.0)


# --------------------------------------------------------------------------------------------
# Enumeration and the fingerprint classifier


def test_label_assignments_are_distinct_and_complete():
    sizes = (2, 1, 2)
    labels = stats.label_assignments(sizes)
    assert labels.shape == (stats.count_assignments(sizes), 5) == (30, 5)
    assert len({tuple(r) for r in labels}) == 30
    assert all(sorted(r.tolist()) == [0, 0, 1, 2, 2] for r in labels)


def test_fingerprint_separated_groups_exact_p():
    rng = np.random.default_rng(5)
    usage = rng.dirichlet(np.ones(6) * 50, size=10)
    groups = np.repeat([0, 1], 5)
    usage[groups == 1, 0] += 0.3
    fp = stats.fingerprint(np.sqrt(usage), groups)
    assert fp.accuracy == 1.0 and fp.exact and fp.n_permutations == 252
    # Perfect accuracy is matched by the observed labelling and its mirror only (here).
    assert fp.p_value == pytest.approx(2 / 252)
    assert fp.chance == 0.5 and fp.null_mean < 0.7
    assert fp.predicted == groups.tolist()


def test_fingerprint_on_null_data_is_not_significant_on_average():
    rng = np.random.default_rng(6)
    ps = []
    for _ in range(20):
        usage = rng.dirichlet(np.ones(6) * 50, size=10)
        ps.append(stats.fingerprint(np.sqrt(usage), np.repeat([0, 1], 5)).p_value)
    assert sum(p <= 0.05 for p in ps) <= 3
    assert 0.3 < float(np.mean(ps)) < 0.8


def test_fingerprint_leaves_the_animal_out_of_its_centroid():
    # Two animals per group: with the left-out animal inside its own centroid, a noise-free
    # point would always be "right". Here each animal sits next to the *other* group's
    # remaining animal, so honest leave-one-out gets every animal wrong.
    features = np.array([[0.0], [10.0], [9.0], [1.0]])
    groups = np.array([0, 0, 1, 1])
    fp = stats.fingerprint(features, groups)
    assert fp.accuracy == 0.0 and fp.p_value == 1.0


def test_standardised_fingerprint_uses_fold_statistics_only():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(8, 3))
    z = stats._loo_standardised(features, True)
    train = np.delete(features, 2, axis=0)
    assert z[2] == pytest.approx((features - train.mean(0)) / train.std(0))
