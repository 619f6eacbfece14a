"""Seed statistics and the claims' verdicts on constructed seed values with known answers."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.optimize import brentq

from reports.stats import (
    difference,
    evaluate_claims,
    holm,
    holm_levels,
    minimum_detectable,
    plateau,
    seed_summary,
    seeds_needed,
)


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01 × 3 = 0.03; 0.03 × 2 = 0.06; 0.04 × 1 = 0.04, raised to the running 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan, 0.01])[1] != holm([0.5, math.nan, 0.01])[1]  # NaN stays NaN
    assert holm([0.5, math.nan, 0.01])[0] == pytest.approx(0.5)  # capped by 1, two tests


def test_holm_levels_step_down_and_freeze_at_the_first_kept_hypothesis():
    # m = 4; sorted p: 0.001 (level .05/4 = .0125: rejected), 0.015 (.05/3: rejected),
    # 0.02 (.05/2: rejected), 0.5 (.05: kept).
    ps = [0.02, 0.001, 0.5, 0.015]
    assert holm_levels(ps) == pytest.approx([0.025, 0.0125, 0.05, 0.05 / 3])
    # 0.02 at .05/3 is kept: the level freezes there for 0.03 and 0.04 (which .05/2 and .05
    # would otherwise reject, unlike Holm).
    frozen = [0.03, 0.001, 0.04, 0.02]
    assert holm_levels(frozen) == pytest.approx([0.05 / 3, 0.0125, 0.05 / 3, 0.05 / 3])
    # Each level agrees with Holm's adjusted p: rejected exactly when p < level.
    for values in (ps, frozen):
        for p, level, adj in zip(values, holm_levels(values), holm(values), strict=True):
            assert (p < level) == (adj < 0.05)


def test_welch_difference_matches_scipy_and_the_formula():
    a, b = [3.1, 2.9, 3.4], [2.5, 2.8, 2.4, 2.6]
    test = difference(a, b, paired=False)
    ma, mb = sum(a) / 3, sum(b) / 4
    va = sum((x - ma) ** 2 for x in a) / 2
    vb = sum((x - mb) ** 2 for x in b) / 3
    se2 = va / 3 + vb / 4
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    assert test["df"] == pytest.approx(df) and test["se"] == pytest.approx(math.sqrt(se2))
    assert test["p"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    pooled = math.sqrt((2 * va + 3 * vb) / 5)
    assert test["effect"] == pytest.approx((ma - mb) / pooled * (1 - 3 / (4 * 7 - 9)))


def test_paired_difference_matches_scipy():
    a, b = [3.0, 3.5, 2.8, 3.3], [2.7, 3.4, 2.4, 3.1]
    test = difference(a, b, paired=True)
    assert test["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)
    d = [x - y for x, y in zip(a, b, strict=True)]
    assert test["difference"] == pytest.approx(sum(d) / 4) and test["df"] == 3


def _hand_mde(n: int, level: float, power: float = 0.8) -> float:
    """The standardised effect a two-sided two-sample t-test with n per group detects with
    ``power``, from the noncentral t distribution (not statsmodels)."""
    df = 2 * n - 2
    crit = sps.t.ppf(1 - level / 2, df)

    def achieved(d):
        nc = d * math.sqrt(n / 2)
        lower = sps.nct.cdf(-crit, df, nc)  # NaN far out in the tail, where it is 0
        return sps.nct.sf(crit, df, nc) + (0.0 if lower != lower else lower) - power

    return brentq(achieved, 0.01, 10)


def test_minimum_detectable_effect_matches_the_noncentral_t():
    # The textbook figure: 3 seeds per arm at α = 0.05 and 80 % power detect about 3.1 σ.
    assert minimum_detectable(3, 3, 1.0, False, 0.05) == pytest.approx(3.07, abs=0.02)
    assert minimum_detectable(3, 3, 1.0, False, 0.05) == pytest.approx(_hand_mde(3, 0.05), rel=1e-3)
    assert minimum_detectable(5, 5, 0.4, False, 0.01) == pytest.approx(0.4 * _hand_mde(5, 0.01), rel=1e-3)
    # Seeds needed: the smallest n whose power reaches 80 %.
    n = seeds_needed(0.5, 0.4, False, 0.05)
    assert _hand_mde(int(n), 0.05) * 0.4 <= 0.5 < _hand_mde(int(n) - 1, 0.05) * 0.4


def test_seed_summary_ci_is_the_t_interval():
    s = seed_summary([2.0, 3.0, 4.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert s["mean"] == 3.0 and s["std"] == 1.0 and s["ci"] == pytest.approx((3 - half, 3 + half))
    one = seed_summary([2.5])
    assert one["n_seeds"] == 1 and one["ci"] is None and one["std"] != one["std"]


VALUES = {
    "strong": [10.0, 10.1, 9.9], "weak": [5.0, 5.1, 4.9],
    "near_above": [5.1, 5.3, 4.9], "near_below": [5.0, 4.8, 5.2],
    "twin_a": [5.00, 5.01, 4.99, 5.00, 5.01, 4.99], "twin_b": [5.00, 5.005, 4.995, 5.01, 4.99, 5.0],
    "low": [1.0, 1.1, 0.9], "one_seed": [7.0],
}


def _claim(*pairs, lower=False, delta=0.1):
    return {"claim": "c", "metric": "IS", "pairs": list(pairs), "lower_is_better": lower,
            "delta": [delta] * len(pairs)}


def _verdicts(*claims, not_judged=None):
    values = {k: {"IS": v} for k, v in VALUES.items()}
    return [p["verdict"] for c in evaluate_claims(list(claims), values, not_judged) for p in c["pairs"]]


def test_each_verdict_on_constructed_seeds():
    assert _verdicts(_claim(("strong", "weak"))) == ["supported"]
    assert _verdicts(_claim(("low", "weak"))) == ["reversed"]
    # Means 0.1 apart with SD 0.2: neither direction nor equivalence within 0.1 can be shown.
    assert _verdicts(_claim(("near_above", "near_below"))) == ["inconclusive"]
    # Six seeds each, means equal to 0.003: the 90 % interval lies inside ±0.1.
    assert _verdicts(_claim(("twin_a", "twin_b"))) == ["equivalent within δ"]
    assert _verdicts(_claim(("twin_a", "twin_b"), delta=0.001)) == ["inconclusive"]
    assert _verdicts(_claim(("one_seed", "weak"))) == ["not tested (1 seed)"]
    assert _verdicts(_claim(("missing", "weak"))) == ["not tested (a run missing)"]
    assert _verdicts(_claim(("strong", "weak")), not_judged={"weak": "under-trained"}) == [
        "not judged (weak: under-trained)"]
    # Lower is better (human rank): the low run wins.
    assert _verdicts(_claim(("low", "weak"), lower=True)) == ["supported"]


def test_paired_pairs_use_the_seeds_both_runs_have():
    # Seed effects shared by both runs (the same Stage-I): paired, the small gain is clear;
    # as two independent groups it is not.
    base = {0: 3.0, 1: 3.8, 2: 2.5, 3: 3.3}
    values = {"s2": {"IS": {s: v + 0.1 + 0.01 * s for s, v in base.items()}},
              "s1": {"IS": {**base, 9: 7.0}}}  # seed 9 has no partner: left out
    claim = {"claim": "c", "metric": "IS", "pairs": [("s2", "s1")], "delta": [0.05]}
    independent = evaluate_claims([claim], values)[0]["pairs"][0]
    paired = evaluate_claims([dict(claim, paired=[True])], values)[0]["pairs"][0]
    assert independent["verdict"] == "inconclusive" and paired["verdict"] == "supported"
    assert paired["df"] == 3 and paired["difference"] == pytest.approx(0.115)


def test_one_seed_never_says_the_claim_fails():
    values = {"a": {"IS": [1.0]}, "b": {"IS": [9.0]}}
    [claim] = evaluate_claims([_claim(("a", "b"))], values)
    assert claim["status"] == "not tested" and claim["pairs"][0]["p"] != claim["pairs"][0]["p"]


def test_holm_adjusts_across_the_tables_pairs_and_a_pair_counts_once():
    # Alone, the weaker pair is supported; beside three others it is not.
    values = {"x": {"IS": [5.3, 5.5, 5.4]}, "y": {"IS": [5.05, 5.25, 5.15]}}  # p = 0.038
    alone = evaluate_claims([_claim(("x", "y"))], values)[0]["pairs"][0]
    assert alone["p"] < 0.05 and alone["verdict"] == "supported" and alone["level"] == 0.05
    many = {**values, **{k: {"IS": v} for k, v in VALUES.items()}}
    claims = [_claim(("x", "y"), ("strong", "weak")), _claim(("near_above", "near_below"), ("low", "weak"))]
    pair = evaluate_claims(claims, many)[0]["pairs"][0]
    assert pair["p"] == alone["p"] and pair["p_holm"] > 0.05
    assert pair["verdict"] == "inconclusive" and pair["ci"][0] < 0 < pair["ci95"][0]
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_claims([_claim(("x", "y")), _claim(("x", "y"))], values)


def test_power_is_reported_beside_each_verdict():
    values = {k: {"IS": v} for k, v in VALUES.items()}
    claim = dict(_claim(("near_above", "near_below")), paper_effect=[0.3])
    pair = evaluate_claims([claim], values)[0]["pairs"][0]
    assert pair["mde"] == pytest.approx(_hand_mde(3, 0.05) * pair["spread"], rel=1e-3)
    assert pair["seeds_needed"] == seeds_needed(0.3, pair["spread"], False, 0.05) > 3


def test_plateau_from_the_slope_against_log_steps():
    steps = [250, 500, 1000, 1150, 1320, 1520, 1740, 2000]  # the last doubling: 1000-2000
    levelled = [60, 31.0, 30.2, 30.5, 30.1, 30.3, 30.2, 30.3]
    falling = [60, 52, 28, 26.4, 24.8, 23.1, 21.5, 20]  # 8 per doubling, far above 5 % of ~24
    noisy = [60, 40, 20, 45, 15, 50, 18, 44]
    assert plateau(steps, levelled)["plateau"] is True
    out = plateau(steps, falling)
    assert out["plateau"] is False and out["gain_per_doubling"] == pytest.approx(8.0, rel=0.02)
    assert out["window"] == (1000, 2000, 6)  # the fit sees the last doubling only
    assert plateau(steps, noisy)["plateau"] is None
    # Higher is better (IS): a rising curve is still improving.
    assert plateau(steps, [1, 2, 3, 4, 5, 6, 7, 8], lower_is_better=False)["plateau"] is False


def test_plateau_needs_enough_validations_in_its_last_doubling_not_just_the_last_five():
    """Five validations every 200 steps of 2000 span 0.74 of a doubling; the test counts the
    validations inside the window, so a curve validated too sparsely near its end is undecided
    whatever came before, and one validated densely uses every point of its last doubling."""
    sparse = plateau([100, 200, 300, 400, 500, 1000, 2000], [9, 8, 7, 6, 5, 4, 3])
    assert sparse["plateau"] is None and "2 validations in the last 1 doubling" in sparse["reason"]
    dense_steps = list(range(100, 2001, 100))
    dense = plateau(dense_steps, [10 - math.log2(s) for s in dense_steps])
    assert dense["window"] == (1000, 2000, 11) and dense["plateau"] is False
    assert dense["gain_per_doubling"] == pytest.approx(1.0)
    wide = plateau(dense_steps, [10 - math.log2(s) for s in dense_steps], window=2)
    assert wide["window"] == (500, 2000, 16)


def test_table_files_show_user_text_as_text():
    """Model names, run ids and claims come from experiment files: in table.csv a cell a
    spreadsheet would run as a formula is quoted, in table.md HTML is shown as text and a line
    break stays inside its cell."""
    import csv
    import io

    import pandas as pd

    from reports.tables import claims_markdown, to_csv, to_markdown

    table = pd.DataFrame({"model": ['=HYPERLINK("http://x","y")', "@SUM(A1)", "<img src=x onerror=alert(1)>",
                                    "two\nlines | pipe", "+cmd", "-0.5"],
                          "is": [1.0, -2.0, 3.0, 4.0, 5.0, 6.0]})
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert [r[0] for r in rows[1:]] == ['\'=HYPERLINK("http://x","y")', "'@SUM(A1)",
                                        "<img src=x onerror=alert(1)>", "two\nlines | pipe", "'+cmd", "-0.5"]
    assert rows[2][1] == "-2.0"  # numbers are left alone
    md = to_markdown(table)
    lines = md.splitlines()
    assert len(lines) == 2 + len(table)  # one line per row: the newline did not split a row
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "<img" not in md
    assert "| two lines \\| pipe |" in md
    claims = [{"claim": "<b>bold</b>", "test": "t", "pairs": [
        {"better": "a<x>", "worse": "b\nc", "n_better": 3, "n_worse": 3, "mean_better": 1.0,
         "mean_worse": 0.5, "p": 0.1, "p_holm": 0.2, "verdict": "inconclusive"}]}]
    out = claims_markdown(claims)
    assert "&lt;b&gt;bold&lt;/b&gt;" in out and "a&lt;x&gt; > b c" in out


def test_a_test_made_elsewhere_decides_its_pair():
    """The human-rank pairs come tested over raters, with bootstrap draws of the difference."""
    import numpy as np

    rng = np.random.default_rng(0)
    better_ranked = list(-0.8 + 0.1 * rng.standard_normal(2000))  # rank(better) - rank(worse) < 0
    tests = {("sg", "gan"): {"difference": -0.8, "p": 0.004, "samples": better_ranked, "n": 10,
                             "method": "m"},
             ("sg", "gawwn"): {"difference": 0.05, "p": 0.7, "n": 10, "method": "m",
                               "samples": list(0.05 + 0.3 * rng.standard_normal(2000))}}
    claim = {"claim": "humans", "metric": "human_rank", "pairs": [("sg", "gan"), ("sg", "gawwn")],
             "lower_is_better": True, "delta": [0.1, 0.1]}
    pairs = evaluate_claims([claim], {}, tests=tests)[0]["pairs"]
    assert [p["verdict"] for p in pairs] == ["supported", "inconclusive"]
    assert pairs[0]["difference"] == 0.8 and pairs[0]["n_better"] == 10  # in the claim's direction
    lo, hi = pairs[0]["ci"]  # the percentile interval at the pair's Holm level (0.05 / 2)
    assert lo == pytest.approx(np.percentile([-x for x in better_ranked], 1.25))
    assert pairs[1]["level"] == 0.05 and pairs[0]["mde"] != pairs[0]["mde"]


def test_a_not_judged_pair_shows_its_numbers_outside_holm():
    # A pair with an under-trained run gets no verdict and no place in Holm's family, but its
    # difference and 95 % interval are there to read (Welch: 5.0 ± 0.1 apart, 3 seeds each).
    from scipy import stats as sps

    values = {k: {"IS": dict(enumerate(v))} for k, v in VALUES.items()}
    claims = [_claim(("strong", "weak"), ("near_above", "near_below"))]
    pairs = evaluate_claims(claims, values, {"weak": "under-trained"})[0]["pairs"]
    shown, judged = pairs
    assert shown["verdict"] == "not judged (weak: under-trained)"
    assert shown["difference"] == pytest.approx(5.0)
    assert shown["level"] == 0.05 and shown["p_holm"] != shown["p_holm"]  # NaN: outside Holm
    welch = sps.ttest_ind(VALUES["strong"], VALUES["weak"], equal_var=False)
    lo, hi = welch.confidence_interval(0.95)
    assert shown["ci"] == pytest.approx((lo, hi))
    assert shown["mde"] == shown["mde"]
    # The judged pair is corrected as the only member of the family: its level is α itself.
    assert judged["level"] == pytest.approx(0.05) and judged["verdict"] == "inconclusive"


def test_plateau_widens_its_interval_for_autocorrelated_validations():
    """Santer et al. (2000): with lag-1 autocorrelation r1 of the residuals the slope's standard
    error grows by sqrt((n - 2) / (n_e - 2)), n_e = n (1 - r1) / (1 + r1), and the t quantile
    takes n_e - 2 degrees of freedom; with r1 <= 0 the interval is least squares' own."""
    steps = [1000 * 2 ** (k / 5) for k in range(11)]
    x = np.log2(steps)
    alternating = [1.0 + 0.1 * (-1) ** k for k in range(11)]  # r1 < 0: plain least squares
    out = plateau(steps, alternating, window=2)
    fit = sps.linregress(x, alternating)
    half = sps.t.ppf(0.975, 9) * fit.stderr
    assert out["autocorrelation"] == 0.0
    assert out["ci"][1] - out["ci"][0] == pytest.approx(2 * half)
    drifting = [1.0, 1.1, 1.05, 0.95, 0.9, 1.0, 1.08, 1.1, 0.98, 0.92, 0.97]  # slow swings: r1 > 0
    out = plateau(steps, drifting, window=2)
    fit = sps.linregress(x, drifting)
    e = np.asarray(drifting) - (fit.intercept + fit.slope * x)
    r1 = float(e[:-1] @ e[1:] / (e @ e))
    n_e = 11 * (1 - r1) / (1 + r1)
    assert out["autocorrelation"] == pytest.approx(r1) and r1 > 0.3 and n_e > 3
    expected = sps.t.ppf(0.975, n_e - 2) * fit.stderr * math.sqrt(9 / (n_e - 2))
    assert out["ci"][1] - out["ci"][0] == pytest.approx(2 * expected)
    slow = [1.0, 1.08, 1.12, 1.1, 1.02, 0.95, 0.9, 0.93, 1.0, 1.05, 1.04]  # r1 0.58: n_e 2.9
    out = plateau(steps, slow, window=2)
    assert out["plateau"] is None and "effective points" in out["reason"]


def test_the_autocorrelation_correction_restores_the_interval_coverage():
    """Flat curves with AR(1) noise (phi 0.6, 11 validations): how often the 95 % interval of the
    slope holds the true 0. Least squares alone covers far less than 95 %; the corrected
    interval covers much more (it stays a little short: r1 from 11 points is biased low)."""
    rng = np.random.default_rng(0)
    steps = [1000 * 2 ** (k / 5) for k in range(11)]
    x = np.log2(steps)
    ols = corrected = 0
    trials = 1000
    for _ in range(trials):
        e = np.zeros(11)
        e[0] = rng.normal() / math.sqrt(1 - 0.36)
        for k in range(1, 11):
            e[k] = 0.6 * e[k - 1] + rng.normal()
        y = 10 + e
        fit = sps.linregress(x, y)
        ols += abs(fit.slope) <= sps.t.ppf(0.975, 9) * fit.stderr
        out = plateau(steps, y.tolist(), window=2)
        corrected += out["plateau"] is None and "ci" not in out or out["ci"][0] <= 0 <= out["ci"][1]
    assert ols / trials < 0.85
    assert corrected / trials > ols / trials + 0.05


def test_a_row_is_judged_by_the_mean_of_its_seeds_curves():
    """The claims compare means over seeds, so a row levels off when the mean of its seeds'
    val-FD curves does: seeds that swing in opposite phases are each undecided while their mean
    is flat; one seed still falling fast keeps the row's mean falling."""
    from reports.build import _not_judged, row_plateau

    steps = [round(1000 * 2 ** (k / 5)) for k in range(11)]
    swing = [0.4 * (-1) ** k for k in range(11)]
    seeds = {0: {s: 1.0 + d for s, d in zip(steps, swing, strict=True)},
             1: {s: 1.0 - d for s, d in zip(steps, swing, strict=True)},
             2: {s: 1.0 + 0.001 * (k % 2) for k, s in enumerate(steps)}}
    assert plateau(steps, list(seeds[0].values()), window=2)["plateau"] is None
    flat = row_plateau(seeds)
    assert flat["plateau"] is True and flat["window"] == (1000, 4000, 11)
    falling = {**seeds, 2: {s: 10.0 - 3 * math.log2(s / 1000) for s in steps}}
    assert row_plateau(falling)["plateau"] is False  # the mean falls by 1 per doubling
    ragged = {0: {1000: 1.0, 2000: 1.0}, 1: {1500: 1.0, 3000: 1.0}}
    assert row_plateau(ragged)["reason"] == "its seeds share no validation step"
    verdicts = {"a": flat, "b": row_plateau(falling),
                "c": {"plateau": None, "reason": "no validation curve (seed 1)"}}
    assert _not_judged(verdicts) == {"b": "not levelled off: still improving",
                                     "c": "not levelled off: no validation curve (seed 1)"}


def test_plateau_text_says_worsening_and_shows_an_undecided_fit():
    from reports.build import _plateau_text

    steps = [round(1000 * 2 ** (k / 5)) for k in range(11)]
    rising = plateau(steps, [1.0 + 0.3 * math.log2(s / 1000) for s in steps], window=2)
    assert rising["plateau"] is True and _plateau_text(rising).startswith("yes, and worsening")
    swinging = plateau(steps, [1.0 + 0.5 * (-1) ** k for k in range(11)], window=2)
    text = _plateau_text(swinging)
    assert swinging["plateau"] is None and text.startswith("not judged, undecided (gain per doubling")
    assert _plateau_text(plateau(steps[:2], [1.0, 1.0])).startswith("not judged (2 validations")
