"""The methods paragraph of a comparison, written from what was run."""

from __future__ import annotations

from app.comparison import nuisance
from app.comparison.design import MIN_USAGE, SEED, Design
from app.comparison.schemas import (
    ComparisonPublic,
)


def _p_method_phrase(methods: set[str]) -> str:
    if not methods:
        return ""
    parts = sorted(methods)
    return "; ".join(parts)


def methods_text(design: Design, result: ComparisonPublic) -> str:
    """A methods paragraph written from what was run: tests, corrections, numbers of animals
    and sessions per cohort, the model version."""
    model = design.model
    cohorts = result.cohorts
    sizes = ", ".join(
        f"{c.name}: {c.animals} animal{'s' if c.animals != 1 else ''} "
        f"({c.sessions} session{'s' if c.sessions != 1 else ''})"
        for c in cohorts
    )
    used = model.states_used if model.states_used is not None else model.states
    text = [
        f"Behaviour was segmented into syllables with model version {model.version} of "
        f'experiment "{design.experiment.name}" (a structured variational autoencoder with '
        f"{model.states} discrete states, {used} in use). "
        f"The animal was the unit of analysis: all sessions of an animal were pooled before any "
        f"statistic was computed ({sizes})."
    ]
    if design.grouping is not None:
        text.append(
            f"Syllables were grouped by the lab before analysis (grouping version "
            f"{design.grouping.version}: {design.grouping.describe()}); each group was counted "
            "as one syllable and consecutive bouts of one group as one bout."
        )
    tested = [s for s in result.syllables if s.tested]
    if len(cohorts) < 2:
        text.append("No statistical test was run: fewer than two cohorts had segmented animals.")
        return " ".join(text)
    two = len(cohorts) == 2
    p_methods = {s.p_method for s in tested if s.p_method}
    test_name = "two-sided Mann–Whitney U tests" if two else "Kruskal–Wallis tests"
    n_sig = sum(s.significant for s in tested)
    text.append(
        f"Syllable usage (fraction of frames) was compared between cohorts for the "
        f"{len(tested)} syllables with at least {MIN_USAGE:.1%} of all frames, with {test_name} "
        f"(mid-ranks for ties; p-values: {_p_method_phrase(p_methods) or 'none'}; permutation "
        "p-values count assignments at least as extreme as the observed one). "
        f"P-values were corrected across syllables with the Benjamini–Hochberg procedure "
        f"(false discovery rate {result.alpha:g}); {n_sig} of {len(tested)} syllables differed."
    )
    if not two:
        text.append(
            "Pairs of cohorts were compared with Dunn's post-hoc test (tie-corrected), "
            "Holm-adjusted over pairs within each syllable."
        )
    n_dur = sum(s.duration_p_value is not None for s in tested)
    if n_dur:
        text.append(
            f"Bout durations (each animal's median per syllable) were compared with the same "
            f"tests for {n_dur} syllables, with a separate Benjamini–Hochberg correction; "
            f"{sum(s.duration_significant for s in tested)} differed."
        )
    text.append(
        "Effect sizes are Cliff's delta and the difference in mean usage with a 95% percentile "
        "bootstrap confidence interval (4,000 resamples of animals within each cohort)."
    )
    tr = result.transitions
    if tr.tested:
        n_tr = sum(r.significant for r in tr.results)
        text.append(
            f"Bout-to-bout transition probabilities (self-transitions excluded) were computed "
            f"per animal and compared for {tr.tested} transitions seen on average at least "
            f"once per animal, with the same tests and a separate Benjamini–Hochberg correction; "
            f"{n_tr} differed."
        )
    fp = result.fingerprint
    if fp.ran and fp.accuracy is not None:
        how = (
            f"all {fp.n_permutations} relabellings"
            if fp.exact
            else f"{fp.n_permutations} random relabellings"
        )
        text.append(
            f"To test the behaviour as a whole, a {fp.method.split(';')[0]} predicted each "
            f"animal's cohort with accuracy {fp.accuracy:.0%} (largest cohort {fp.chance:.0%}; "
            f"permutation p = {fp.p_value:.3g} over {how})."
        )
    loco = [r for r in result.locomotion if r.p_value is not None]
    if loco:
        text.append(
            "Locomotion (distance travelled per minute and mean speed of the body centre, in "
            "pixels) was compared with the same test, uncorrected: "
            + "; ".join(f"{r.measure} p = {r.p_value:.3g}" for r in loco)
            + "."
        )
    conditions = nuisance.methods_sentence(result)
    if conditions:
        text.append(conditions)
    text.append(f"Analysis by Syllabary (random seed {SEED}).")
    return " ".join(text)
