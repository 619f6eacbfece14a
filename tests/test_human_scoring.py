"""Human-rank scoring against hand computations and known values."""

import numpy as np
import pytest

from harness.human.responses import Response
from harness.human.scoring import kendalls_w, krippendorff_alpha, markdown_table, score


def _study():
    # Two regular items with models X, Y, Z; groups named <item><model>.
    items = [{"item_id": i, "kind": "regular", "caption": "c",
              "groups": [{"group_id": f"{i}{m}", "images": []} for m in "XYZ"]} for i in ("a", "b")]
    key = {"models": {"X": {}, "Y": {}, "Z": {}},
           "groups": {f"{i}{m}": m for i in ("a", "b") for m in "XYZ"}, "checks": {}}
    return {"items": items, "models": 3}, key


def _resp(rater, a, b, alignment=None):
    answers = {"a": {"ranks": {f"a{m}": r for m, r in zip("XYZ", a, strict=True)}},
               "b": {"ranks": {f"b{m}": r for m, r in zip("XYZ", b, strict=True)}}}
    if alignment:
        answers["a"]["alignment"] = {f"a{m}": v for m, v in zip("XYZ", alignment, strict=True)}
    return Response(rater, rater, answers)


def test_average_rank_and_agreement_match_a_hand_computation():
    study, key = _study()
    responses = [_resp("r1", (1, 2, 3), (1, 3, 2)), _resp("r2", (2, 1, 3), (1, 2, 3))]
    out = score(study, key, responses, bootstrap=200)
    # X: ranks 1, 1, 2, 1 -> 1.25; Y: 2, 3, 1, 2 -> 2.0; Z: 3, 2, 3, 3 -> 2.75.
    assert out["models"]["X"]["mean_rank"] == pytest.approx(1.25)
    assert out["models"]["Y"]["mean_rank"] == pytest.approx(2.0)
    assert out["models"]["Z"]["mean_rank"] == pytest.approx(2.75)
    # Across raters: r1's averages (1, 2.5, 2.5), r2's (1.5, 1.5, 3): std(ddof=1) of X = 0.3536.
    assert out["models"]["X"]["std_across_raters"] == pytest.approx(np.std([1, 1.5], ddof=1))
    # Kendall's W, item a: rank sums (3, 3, 6), mean 4, S = 1 + 1 + 4 = 6, W = 12·6/(4·24) = 0.75;
    # item b: sums (2, 5, 5), S = 6 -> 0.75.
    assert out["agreement"]["kendall_w_mean"] == pytest.approx(0.75)
    lo, hi = out["models"]["X"]["ci95"]
    # Resampling 2 raters x 2 items: X's mean rank ranges over 1, 1.25, ... 2; a fourth of the
    # resamples hold only rank-1 cells, and enough hold the 2 for the upper end to reach 1.5.
    assert lo == 1.0 and 1.5 <= hi <= 2.0
    agreed = score(study, key, [_resp("r1", (1, 2, 3), (1, 2, 3)), _resp("r2", (1, 2, 3), (1, 2, 3))],
                   bootstrap=50)
    assert agreed["models"]["Y"]["ci95"] == [2.0, 2.0]  # no spread, no width
    assert "| X | 1.25 ± 0.35 |" in markdown_table(out)


def test_kendalls_w_against_scipys_friedman_statistic():
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(0)
    ranks = np.array([rng.permutation(5) + 1 for _ in range(7)], dtype=float)
    w = kendalls_w(ranks)
    chi2 = friedmanchisquare(*ranks.T).statistic
    assert chi2 == pytest.approx(7 * (5 - 1) * w)
    assert kendalls_w(np.array([[1, 2, 3], [1, 2, 3]])) == pytest.approx(1.0)


def test_krippendorff_alpha_reproduces_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units.
    nan = np.nan
    data = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
                     [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]])
    assert krippendorff_alpha(data, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)


def test_ratings_agreement_is_reported_when_given():
    study, key = _study()
    responses = [_resp("r1", (1, 2, 3), (1, 2, 3), alignment=(5, 3, 1)),
                 _resp("r2", (1, 2, 3), (1, 2, 3), alignment=(5, 3, 1))]
    out = score(study, key, responses, bootstrap=50)
    assert out["agreement"]["alpha_alignment"] == pytest.approx(1.0)
    assert out["models"]["X"]["alignment"] == 5.0
    assert np.isnan(out["agreement"]["alpha_realism"])


def test_markdown_table_exact_text():
    result = {"models": {
        "B": {"mean_rank": 1.75, "std_across_raters": 0.125, "ci95": [1.5, 2.0], "n": 8,
              "alignment": float("nan"), "realism": 3.456},
        "A": {"mean_rank": 1.25, "std_across_raters": 0.5, "ci95": [1.0, 1.5], "n": 8,
              "alignment": 4.0, "realism": float("nan")}},
        "agreement": {"kendall_w_mean": 0.75, "alpha_alignment": float("nan"), "alpha_realism": 0.5},
        "raters": 2, "items": 4}
    assert markdown_table(result, paper={"A": "1.37"}) == (
        "| model | average human rank (1 = best) | 95% CI | ratings | alignment | realism | paper |\n"
        "|---|---|---|---|---|---|---|\n"
        "| A | 1.25 ± 0.50 | 1.00–1.50 | 8 | 4.00 | – | 1.37 |\n"
        "| B | 1.75 ± 0.12 | 1.50–2.00 | 8 | – | 3.46 | – |\n"
        "\n"
        "2 raters × 4 descriptions. ± is the std across raters of each rater's average rank; the CI "
        "resamples raters and descriptions.\n"
        "Agreement: Kendall's W 0.750 (mean over descriptions); Krippendorff's α (ordinal) "
        "alignment –, realism 0.500.\n")
    plain = markdown_table(dict(result, agreement={}))
    assert plain.splitlines()[0].endswith("| realism |") and plain.splitlines()[1] == "|" + "---|" * 6
    assert "Kendall's W – (mean" in plain


@pytest.mark.parametrize("dissenter", [0, 3], ids=["first-rater", "last-rater"])
def test_the_bootstrap_draws_every_rater(dissenter):
    """Three raters rank X first everywhere, one ranks it last. A resample misses that rater
    with probability (3/4)^4 ≈ 0.32, so the CI's lower end is X = 1 and its upper end is above 1;
    a bootstrap that never drew the first (or the last) rater would give [1, 1]."""
    study, key = _study()
    responses = [_resp(f"r{i}", (3, 1, 2) if i == dissenter else (1, 2, 3),
                       (3, 1, 2) if i == dissenter else (1, 2, 3)) for i in range(4)]
    out = score(study, key, responses, bootstrap=400)
    lo, hi = out["models"]["X"]["ci95"]
    assert out["models"]["X"]["mean_rank"] == pytest.approx(1.5)
    assert lo == 1.0 and hi >= 2.0


def test_model_comparisons_friedman_by_hand_and_wilcoxon_over_raters():
    from scipy import stats as sps

    from harness.human.scoring import compare_models, pair_test

    # 6 raters x 1 description x 3 models; model A ranked first by five raters.
    per_rater = [(1, 2, 3), (1, 3, 2), (1, 2, 3), (1, 2, 3), (2, 1, 3), (1, 3, 2)]
    ranks = np.array(per_rater, dtype=float)[:, None, :]
    out = compare_models(ranks, ["A", "B", "C"], bootstrap=300, seed=1)
    # Friedman by hand: rank sums R = (7, 13, 16), n = 6, k = 3:
    # chi2 = 12 / (n k (k + 1)) * sum(R^2) - 3 n (k + 1) = 12/72 * 474 - 72 = 7.0
    assert out["friedman"]["chi2"] == pytest.approx(7.0)
    assert out["friedman"]["p"] == pytest.approx(sps.chi2.sf(7.0, 2))
    ab = pair_test(out, "A", "B")
    # Per-rater differences A - B: -1, -2, -1, -1, +1, -2 (mean -1): scipy's signed-rank test.
    assert ab["difference"] == pytest.approx(-1.0)
    assert ab["p"] == pytest.approx(sps.wilcoxon([-1, -2, -1, -1, 1, -2], zero_method="zsplit").pvalue)
    ba = pair_test(out, "B", "A")  # the same test read the other way round
    assert ba["difference"] == 1.0 and ba["p"] == ab["p"]
    assert ba["samples"] == [-x for x in ab["samples"]] and len(ab["samples"]) == 300
    assert pair_test(out, "A", "Z") is None
    # Raters who disagree exactly about A and B: no difference, p = 1.
    split = compare_models(np.array([[(1, 2, 3)], [(2, 1, 3)]], dtype=float), list("ABC"), 10)
    assert split["pairs"]["A|B"]["difference"] == 0.0 and split["pairs"]["A|B"]["p"] == 1.0


def test_per_class_ranks_by_hand_and_absent_for_studies_without_class_ids():
    study, key = _study()
    responses = [_resp("r1", (1, 2, 3), (1, 3, 2)), _resp("r2", (2, 1, 3), (1, 2, 3))]
    assert "per_class" not in score(study, key, responses, bootstrap=10)
    study["items"][0]["class_id"], study["items"][1]["class_id"] = 7, 3
    out = score(study, key, responses, bootstrap=10)
    # Class 7 is item a: X ranked 1 and 2 -> 1.5, Y 2 and 1 -> 1.5, Z 3. Class 3 is item b.
    assert out["per_class"]["7"] == {"items": 1, "mean_rank": {"X": 1.5, "Y": 1.5, "Z": 3.0}}
    assert out["per_class"]["3"] == {"items": 1, "mean_rank": {"X": 1.0, "Y": 2.5, "Z": 2.5}}
    assert list(out["per_class"]) == ["3", "7"]
