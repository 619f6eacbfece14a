"""Seed statistics of a table cell, and the paper's claims tested pair by pair.

A cell over seeds: mean, standard deviation (n − 1) and a 95 % confidence interval of the mean
from Student's t. A claim is a set of (better, worse) run pairs; each pair is tested with
Welch's t-test over the two runs' seeds (two-sided; scipy), the p-values of one table's pairs
are adjusted together with Holm's step-down method, and each pair gets a verdict:
*holds (significant)*, *holds (not significant)*, *reversed (not significant)*,
*reversed (significant)*, or *not tested* (fewer than two seeds on a side, or a run missing).
One seed can never yield a reversal verdict.

Holm's adjustment is five lines; statsmodels, which has it, is not a dependency of the project.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
TEST_NAME = "Welch's t-test over seeds (two-sided), Holm-adjusted across the table's pairs"


def seed_summary(values: list[float]) -> dict:
    """mean, std, 95 % CI of the mean over seeds (CI only with two seeds or more)."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    n = len(v)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "ci": None, "n_seeds": 0}
    if n == 1:
        return {"mean": float(v[0]), "std": math.nan, "ci": None, "n_seeds": 1}
    mean, std = float(v.mean()), float(v.std(ddof=1))
    half = float(sps.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci": (mean - half, mean + half), "n_seeds": n}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN)."""
    idx = [i for i, p in enumerate(pvalues) if p == p]
    order = sorted(idx, key=lambda i: pvalues[i])
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def welch(better: list[float], worse: list[float]) -> float:
    """Two-sided p-value of Welch's t-test; 1.0 when both sides are constant and equal, 0.0 when
    they are constant and different (no spread to weigh the difference against)."""
    a, b = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if a.std() == 0 and b.std() == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def verdict(direction_holds: bool, p_adjusted: float) -> str:
    significant = p_adjusted == p_adjusted and p_adjusted < ALPHA
    side = "holds" if direction_holds else "reversed"
    return f"{side} ({'significant' if significant else 'not significant'})"


def evaluate_claims(claims: list[dict], seed_values: dict[str, dict[str, list[float]]]) -> list[dict]:
    """``claims``: [{claim, metric, pairs: [(better, worse)], lower_is_better}];
    ``seed_values``: run id -> metric -> per-seed values. Returns each claim with per-pair means,
    difference, p-value, Holm-adjusted p-value and verdict, and a summary line."""
    tested = []
    for claim in claims:
        for better, worse in claim["pairs"]:
            a = [x for x in seed_values.get(better, {}).get(claim["metric"], []) if x == x]
            b = [x for x in seed_values.get(worse, {}).get(claim["metric"], []) if x == x]
            entry = {"better": better, "worse": worse, "n_better": len(a), "n_worse": len(b),
                     "mean_better": float(np.mean(a)) if a else math.nan,
                     "mean_worse": float(np.mean(b)) if b else math.nan, "p": math.nan}
            if not a or not b:
                entry["reason"] = "a run missing"
            elif min(len(a), len(b)) < 2:
                entry["reason"] = f"{min(len(a), len(b))} seed"
            else:
                entry["p"] = welch(a, b)
            tested.append((claim, entry))
    adjusted = holm([e["p"] for _, e in tested])
    out: dict[int, dict] = {}
    for (claim, entry), p_adj in zip(tested, adjusted, strict=True):
        entry["p_holm"] = p_adj
        if "reason" in entry:
            entry["verdict"] = f"not tested ({entry['reason']})"
        else:
            diff = entry["mean_better"] - entry["mean_worse"]
            holds = diff < 0 if claim.get("lower_is_better") else diff > 0
            entry["verdict"] = verdict(holds, p_adj)
        record = out.setdefault(id(claim), {"claim": claim["claim"], "metric": claim["metric"],
                                            "test": TEST_NAME, "pairs": []})
        record["pairs"].append(entry)
    results = list(out.values())
    for record in results:
        counts: dict[str, int] = {}
        for pair in record["pairs"]:
            counts[pair["verdict"]] = counts.get(pair["verdict"], 0) + 1
        n = len(record["pairs"])
        record["status"] = (next(iter(counts)) if len(counts) == 1 else
                            "; ".join(f"{v}: {c} of {n} pairs" for v, c in sorted(counts.items())))
    return results


def plateau(values: list[float], window: int = 3, tolerance: float = 0.1) -> dict:
    """Has a lower-is-better validation curve levelled off? Over the last ``window`` points it
    improved by less than ``tolerance`` of its total improvement (first value to best), compared
    with the ``window`` points before. Needs 2·window points."""
    v = [x for x in values if x == x]
    if len(v) < 2 * window:
        return {"plateau": None, "reason": f"{len(v)} validations (needs {2 * window})"}
    total = v[0] - min(v)
    last = float(np.mean(v[-window:])) - float(np.mean(v[-2 * window:-window]))
    share = -last / total if total > 0 else 0.0
    return {"plateau": bool(share < tolerance), "last_gain_share": share, "first": v[0],
            "best": min(v), "final": v[-1]}
