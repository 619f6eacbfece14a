"""Seed statistics and the claims' verdicts on constructed seed values with known answers."""

import math

import pytest
from scipy import stats as sps

from reports.stats import evaluate_claims, holm, seed_summary, welch


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01 × 3 = 0.03; 0.03 × 2 = 0.06; 0.04 × 1 = 0.04, raised to the running 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan, 0.01])[1] != holm([0.5, math.nan, 0.01])[1]  # NaN stays NaN
    assert holm([0.5, math.nan, 0.01])[0] == pytest.approx(0.5)  # capped by 1, two tests


def test_welch_matches_the_formula():
    a, b = [3.1, 2.9, 3.4], [2.5, 2.8, 2.4, 2.6]
    ma, mb = sum(a) / 3, sum(b) / 4
    va = sum((x - ma) ** 2 for x in a) / 2
    vb = sum((x - mb) ** 2 for x in b) / 3
    se2 = va / 3 + vb / 4
    t = (ma - mb) / math.sqrt(se2)
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    assert welch(a, b) == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert welch([1.0, 1.0], [1.0, 1.0]) == 1.0 and welch([2.0, 2.0], [1.0, 1.0]) == 0.0


def test_seed_summary_ci_is_the_t_interval():
    s = seed_summary([2.0, 3.0, 4.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert s["mean"] == 3.0 and s["std"] == 1.0 and s["ci"] == pytest.approx((3 - half, 3 + half))
    one = seed_summary([2.5])
    assert one["n_seeds"] == 1 and one["ci"] is None and one["std"] != one["std"]


VALUES = {
    "strong": [10.0, 10.1, 9.9], "weak": [5.0, 5.1, 4.9],
    "near_above": [5.1, 5.3, 4.9], "near_below": [5.0, 4.8, 5.2],
    "low": [1.0, 1.1, 0.9], "one_seed": [7.0],
}


def _claim(*pairs, lower=False):
    return {"claim": "c", "metric": "IS", "pairs": list(pairs), "lower_is_better": lower}


def _verdicts(*claims):
    values = {k: {"IS": v} for k, v in VALUES.items()}
    return [p["verdict"] for c in evaluate_claims(list(claims), values) for p in c["pairs"]]


def test_each_verdict_on_constructed_seeds():
    assert _verdicts(_claim(("strong", "weak"))) == ["holds (significant)"]
    assert _verdicts(_claim(("near_above", "near_below"))) == ["holds (not significant)"]
    assert _verdicts(_claim(("near_below", "near_above"))) == ["reversed (not significant)"]
    assert _verdicts(_claim(("low", "weak"))) == ["reversed (significant)"]
    assert _verdicts(_claim(("one_seed", "weak"))) == ["not tested (1 seed)"]
    assert _verdicts(_claim(("missing", "weak"))) == ["not tested (a run missing)"]
    # Lower is better (human rank): the low run wins.
    assert _verdicts(_claim(("low", "weak"), lower=True)) == ["holds (significant)"]


def test_one_seed_never_says_the_claim_fails():
    values = {"a": {"IS": [1.0]}, "b": {"IS": [9.0]}}
    [claim] = evaluate_claims([_claim(("a", "b"))], values)
    assert claim["status"] == "not tested (1 seed)" and claim["pairs"][0]["p"] != claim["pairs"][0]["p"]


def test_holm_adjusts_across_the_tables_pairs():
    # Alone, the weaker pair is significant; beside three others it is not.
    values = {"x": {"IS": [5.3, 5.5, 5.4]}, "y": {"IS": [5.05, 5.25, 5.15]}}  # p = 0.038
    alone = evaluate_claims([_claim(("x", "y"))], values)[0]["pairs"][0]
    assert alone["p"] < 0.05 and alone["verdict"] == "holds (significant)"
    many = {**values, **{k: {"IS": v} for k, v in VALUES.items()}}
    claims = [_claim(("x", "y"), ("strong", "weak")), _claim(("near_above", "near_below"), ("low", "weak"))]
    pair = evaluate_claims(claims, many)[0]["pairs"][0]
    assert pair["p"] == alone["p"] and pair["p_holm"] > 0.05
    assert pair["verdict"] == "holds (not significant)"


def test_plateau_tells_a_levelled_curve_from_a_falling_one():
    from reports.stats import plateau

    levelled = [100, 60, 40, 32, 30, 29.5, 29.4, 29.6, 29.3]
    falling = [100, 90, 80, 70, 60, 50, 40, 30, 20]
    assert plateau(levelled)["plateau"] is True
    assert plateau(falling)["plateau"] is False
    # Over the last three points the falling curve gained 30 of its 80: a share of 0.375.
    assert plateau(falling)["last_gain_share"] == pytest.approx(30 / 80)
    assert plateau([5, 4])["plateau"] is None


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
        {"better": "a<x>", "worse": "b\nc", "mean_better": 1.0, "mean_worse": 0.5, "p": 0.1,
         "p_holm": 0.2, "verdict": "holds (not significant)"}]}]
    out = claims_markdown(claims)
    assert "&lt;b&gt;bold&lt;/b&gt;" in out and "a&lt;x&gt; > b c" in out
