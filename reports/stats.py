"""Seed statistics of a table cell, the paper's claims decided from effect sizes, and whether a
training run has levelled off.

A cell over seeds: mean, standard deviation (n − 1, "SD over seeds") and a 95 % confidence
interval of the mean from Student's t.

A claim is a set of (better, worse) run pairs on one metric. Each pair is decided from the
difference of its means (in the claim's direction: positive = the paper's ordering), with:
- the difference's confidence interval: Welch–Satterthwaite over the two runs' seeds, or paired
  over seeds where the two runs share their seeds' Stage-I (so seed s of each is built on the
  same Stage-I run), and its two-sided p-value;
- the standardised effect (Hedges' g for two groups, d_z for pairs);
- a multiplicity correction over the table's distinct pairs: Holm's step-down, applied to the
  intervals as well (the pair ranked k by p gets the level α/(m − k), and every pair after the
  first one Holm does not reject keeps that pair's level), so that a pair is *supported* exactly
  when Holm rejects "no difference" and the difference is positive;
- an equivalence test (TOST: the two one-sided tests at the pair's level, i.e. its
  1 − 2α_k interval inside ±δ) with a margin δ stated per pair;
- the power: the minimum detectable effect at the seeds run and the seeds per run needed to
  detect the paper's effect, at 80 % power and the pair's level (statsmodels).
Verdicts: *supported*, *reversed*, *equivalent within δ*, *inconclusive*, *not tested* (a run
missing, or fewer than two seeds on a side), *not judged* (a row not shown to have levelled
off: the mean of its seeds' validation curves, reports/build.py).

Power and TOST come from statsmodels (TTestIndPower/TTestPower, ttost_ind/ttost_paired),
checked against hand computations in tests/test_report_stats.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.8
TEST_NAME = ("difference of means over seeds (Welch–Satterthwaite, or paired over seeds where "
             "the runs share their Stage-I), Holm-corrected across the table's distinct pairs; "
             "equivalence by TOST within ±δ")
VERDICTS = ("supported", "reversed", "equivalent within δ", "inconclusive", "not tested",
            "not judged")


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


def holm_levels(pvalues: list[float], alpha: float = ALPHA) -> list[float]:
    """Per test, the level its interval is computed at under Holm's step-down: α/(m − k) for the
    k-th smallest p, frozen at the first test Holm does not reject (NaN stays NaN). A test's
    interval at this level excludes zero exactly when Holm rejects it."""
    idx = [i for i, p in enumerate(pvalues) if p == p]
    order = sorted(idx, key=lambda i: pvalues[i])
    levels = [math.nan] * len(pvalues)
    frozen = None
    for rank, i in enumerate(order):
        level = alpha / (len(order) - rank) if frozen is None else frozen
        if frozen is None and pvalues[i] >= level:
            frozen = level
        levels[i] = level
    return levels


def difference(better: list[float], worse: list[float], paired: bool) -> dict:
    """Difference of means (better − worse) with its standard error, degrees of freedom, t and
    two-sided p; Welch–Satterthwaite, or over the per-seed differences when ``paired``."""
    a, b = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if paired:
        if len(a) != len(b):
            raise ValueError("paired samples need the same seeds on both sides")
        d = a - b
        n = len(d)
        diff, sd = float(d.mean()), float(d.std(ddof=1))
        se, df = sd / math.sqrt(n), n - 1
        effect = diff / sd if sd > 0 else math.copysign(math.inf, diff) if diff else 0.0
        spread = sd
    else:
        na, nb = len(a), len(b)
        va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
        diff = float(a.mean() - b.mean())
        se = math.sqrt(va / na + vb / nb)
        df = ((va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
              if se > 0 else na + nb - 2)
        pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
        correction = 1 - 3 / (4 * (na + nb) - 9)  # Hedges' small-sample correction
        effect = (diff / pooled * correction if pooled > 0
                  else math.copysign(math.inf, diff) if diff else 0.0)
        spread = pooled
    if se > 0:
        t = diff / se
        p = float(2 * sps.t.sf(abs(t), df))
    else:  # no spread to weigh the difference against
        t = math.copysign(math.inf, diff) if diff else 0.0
        p = 0.0 if diff else 1.0
    return {"difference": diff, "se": se, "df": float(df), "t": t, "p": p, "effect": effect,
            "spread": spread, "paired": paired}


def interval(test: dict, level: float) -> tuple[float, float]:
    """The two-sided (1 − level) interval of the difference: Student's t, or the percentile
    interval of a test's bootstrap ``samples`` (human ranks)."""
    if "samples" in test:
        lo, hi = np.percentile(test["samples"], [100 * level / 2, 100 * (1 - level / 2)])
        return (float(lo), float(hi))
    if test["se"] == 0:
        return (test["difference"], test["difference"])
    half = float(sps.t.ppf(1 - level / 2, test["df"]) * test["se"])
    return (test["difference"] - half, test["difference"] + half)


def equivalent(test: dict, delta: float, level: float) -> bool:
    """TOST at ``level``: both one-sided tests reject, i.e. the 1 − 2·level interval lies inside
    (−δ, δ)."""
    if not delta or delta != delta or delta <= 0:
        return False
    lo, hi = interval(test, 2 * level)
    return -delta < lo and hi < delta


def minimum_detectable(n_better: int, n_worse: int, spread: float, paired: bool,
                       level: float, power: float = POWER) -> float:
    """The smallest difference a two-sided test at ``level`` detects with ``power``, in the
    metric's units (standardised effect × the spread: the pooled SD, or the SD of the paired
    differences)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if spread != spread or spread <= 0 or min(n_better, n_worse) < 2:
        return math.nan
    if paired:
        effect = TTestPower().solve_power(nobs=n_better, alpha=level, power=power)
    else:
        effect = TTestIndPower().solve_power(nobs1=n_better, ratio=n_worse / n_better, alpha=level,
                                             power=power)
    return float(effect) * spread


def seeds_needed(target: float, spread: float, paired: bool, level: float,
                 power: float = POWER, cap: int = 1000) -> float:
    """Seeds per run for a two-sided test at ``level`` to detect a difference ``target`` with
    ``power`` (equal seeds on both sides); NaN when unknown, ``cap`` + 1 when more than ``cap``."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if not target or target != target or spread != spread or spread <= 0:
        return math.nan
    effect = abs(target) / spread
    solver = TTestPower() if paired else TTestIndPower()
    for n in range(2, cap + 1):
        kwargs = {"nobs": n} if paired else {"nobs1": n, "ratio": 1.0}
        if solver.power(effect_size=effect, alpha=level, **kwargs) >= power:
            return float(n)
    return float(cap + 1)


def _values(seed_values: dict, run: str, metric: str) -> dict:
    """``{seed: value}`` without NaNs; a plain list is taken as seeds 0, 1, …"""
    raw = seed_values.get(run, {}).get(metric, {})
    if isinstance(raw, list | tuple):
        raw = dict(enumerate(raw))
    return {s: float(v) for s, v in raw.items() if v == v}


def evaluate_claims(claims: list[dict], seed_values: dict[str, dict[str, dict]],
                    not_judged: dict[str, str] | None = None, alpha: float = ALPHA,
                    tests: dict[tuple[str, str], dict] | None = None) -> list[dict]:
    """Decide each claim's pairs.

    ``claims``: [{claim, metric, pairs: [(better, worse)], lower_is_better, paired: [bool per
    pair] (optional), delta: [δ per pair] (optional), paper_effect: [the paper's difference per
    pair, in our units] (optional), delta_reason}]; ``seed_values``: run → metric → {seed:
    value}; ``not_judged``: run → why it is not judged (e.g. it did not level off); ``tests``:
    (better, worse) → a test made elsewhere ({difference (better − worse), p, samples: its
    bootstrap distribution, n, method}), used instead of the seeds (the human ranks, tested over
    raters). The same pair may not appear twice among the claims (Holm would count it twice)."""
    not_judged = not_judged or {}
    seen: set[tuple] = set()
    tested: list[tuple[dict, dict]] = []
    for claim in claims:
        sign = -1.0 if claim.get("lower_is_better") else 1.0
        for k, (better, worse) in enumerate(claim["pairs"]):
            key = (claim["metric"], better, worse)
            if key in seen:
                raise ValueError(f"the pair {better} > {worse} on {claim['metric']} is listed twice "
                                 "among the claims (Holm would count it twice)")
            seen.add(key)
            a, b = _values(seed_values, better, claim["metric"]), _values(seed_values, worse,
                                                                         claim["metric"])
            paired = bool((claim.get("paired") or [False] * len(claim["pairs"]))[k])
            delta = (claim.get("delta") or [math.nan] * len(claim["pairs"]))[k]
            target = (claim.get("paper_effect") or [math.nan] * len(claim["pairs"]))[k]
            entry = {"better": better, "worse": worse, "n_better": len(a), "n_worse": len(b),
                     "mean_better": float(np.mean(list(a.values()))) if a else math.nan,
                     "mean_worse": float(np.mean(list(b.values()))) if b else math.nan,
                     "values_better": a, "values_worse": b, "paired": paired, "delta": delta,
                     "paper_effect": target, "p": math.nan}
            given = (tests or {}).get((better, worse))
            if given is not None:
                entry.update({"n_better": given["n"], "n_worse": given["n"], "p": given["p"],
                              "difference": sign * given["difference"], "method": given["method"],
                              "samples": [sign * x for x in given["samples"]], "paired": True,
                              "effect": math.nan, "spread": math.nan})
                tested.append((claim, entry))
                continue
            if paired and a and b:  # the seeds both runs have
                common = sorted(set(a) & set(b))
                a, b = {s: a[s] for s in common}, {s: b[s] for s in common}
            if not a or not b:
                entry["reason"] = "a run missing"
            elif min(len(a), len(b)) < 2:
                entry["reason"] = f"{min(len(a), len(b))} seed"
            elif better in not_judged or worse in not_judged:
                run = better if better in not_judged else worse
                entry["not_judged"] = f"{run}: {not_judged[run]}"
            if "reason" not in entry:
                test = difference([sign * v for v in a.values()], [sign * v for v in b.values()],
                                  paired)
                entry.update(test)
            tested.append((claim, entry))
    judged = [e.get("p", math.nan) if "not_judged" not in e else math.nan for _, e in tested]
    levels = holm_levels(judged, alpha)
    adjusted = holm(judged)
    out: dict[int, dict] = {}
    for (claim, entry), level, p_adj in zip(tested, levels, adjusted, strict=True):
        entry["level"], entry["p_holm"] = level, p_adj
        if "reason" in entry:
            entry["verdict"] = f"not tested ({entry['reason']})"
        elif "not_judged" in entry:
            # No verdict and no place in Holm's family, but the numbers are shown, at the plain
            # level α, so that a reader sees what the seeds measured.
            entry["verdict"] = f"not judged ({entry['not_judged']})"
            entry["level"] = alpha
            _describe(entry, alpha, alpha)
        else:
            _describe(entry, level, alpha)
            lo, hi = entry["ci"]
            if lo > 0:
                entry["verdict"] = "supported"
            elif hi < 0:
                entry["verdict"] = "reversed"
            elif equivalent(entry, entry["delta"], level):
                entry["verdict"] = "equivalent within δ"
            else:
                entry["verdict"] = "inconclusive"
        record = out.setdefault(id(claim), {"claim": claim["claim"], "metric": claim["metric"],
                                            "test": TEST_NAME, "pairs": [],
                                            "delta_reason": claim.get("delta_reason", "")})
        record["pairs"].append(entry)
    results = list(out.values())
    for record in results:
        counts: dict[str, int] = {}
        for pair in record["pairs"]:
            word = pair["verdict"].split(" (")[0]
            counts[word] = counts.get(word, 0) + 1
        n = len(record["pairs"])
        record["status"] = (next(iter(counts)) if len(counts) == 1 else
                            "; ".join(f"{v}: {c} of {n} pairs" for v, c in sorted(counts.items())))
    return results


def _describe(entry: dict, level: float, alpha: float) -> None:
    """A tested pair's interval at ``level`` (and at α), minimum detectable effect and seeds
    needed for the paper's effect."""
    entry["ci"] = interval(entry, level)
    entry["ci95"] = interval(entry, alpha)
    if "samples" in entry:  # power over raters is not modelled here
        entry["mde"] = entry["seeds_needed"] = math.nan
    else:
        entry["mde"] = minimum_detectable(len(entry["values_better"]), len(entry["values_worse"]),
                                          entry["spread"], entry["paired"], level)
        entry["seeds_needed"] = seeds_needed(entry["paper_effect"], entry["spread"],
                                             entry["paired"], level)


def plateau(steps: list[float], values: list[float], *, window: float = 1.0, min_points: int = 5,
            tolerance: float = 0.05, lower_is_better: bool = True, confidence: float = 0.95) -> dict:
    """Has a validation curve levelled off? Over the validations of its last ``window``
    doublings of steps (from half the final step to the final step, by default), the
    least-squares slope of the metric against log2(step) — the change per doubling of training
    — with its ``confidence`` interval. Levelled off when the whole interval of the
    *improvement* per doubling lies below ``tolerance`` × the curve's level there (it may still
    be gaining, but not by more than that); still improving when the interval lies above it;
    undecided otherwise (too noisy, or fewer than ``min_points`` validations in the window).
    The window is fixed in doublings, not in validations: a fixed count of the last
    validations spans less than a doubling when validations are frequent (five every 200 steps
    of 2000 span 1200-2000, and the interval of the slope widens as the span shrinks).

    Neighbouring validations may not be independent (a run judged by an average of its weights
    carries part of one validation's weights into the next), and least squares then makes the
    interval too narrow. So the interval is widened for the lag-1 autocorrelation r1 of the
    residuals, as Santer et al. (J. Geophys. Res. 105, 2000) do for trends in climate series:
    the effective number of points n_e = n (1 - r1) / (1 + r1) (r1 taken as 0 when negative)
    replaces n in the residual variance and in the t quantile's degrees of freedom, n_e - 2. With
    r1 <= 0 this is ordinary least squares; with n_e <= 3 the curve is undecided."""
    pts = [(s, v) for s, v in zip(steps, values, strict=True) if v == v and s > 0]
    window_pts = [(s, v) for s, v in pts if s >= pts[-1][0] / 2 ** window] if pts else []
    if len(window_pts) < min_points:
        return {"plateau": None, "validations": len(pts),
                "reason": f"{len(window_pts)} validations in the last {window:g} doubling(s) of "
                          f"steps (needs {min_points})"}
    x = np.log2([s for s, _ in window_pts])
    y = np.asarray([v for _, v in window_pts], dtype=float)
    fit = sps.linregress(x, y)
    residuals = y - (fit.intercept + fit.slope * x)
    energy = float(np.dot(residuals, residuals))
    r1 = max(0.0, float(np.dot(residuals[:-1], residuals[1:])) / energy) if energy > 0 else 0.0
    n = len(x)
    n_eff = n * (1 - r1) / (1 + r1)
    if n_eff <= 3:
        return {"plateau": None, "validations": len(pts), "autocorrelation": r1,
                "window": (window_pts[0][0], window_pts[-1][0], n),
                "reason": f"neighbouring validations too alike (lag-1 autocorrelation {r1:.2f}: "
                          f"{n_eff:.1f} effective points of {n})"}
    stderr = float(fit.stderr) * math.sqrt((n - 2) / (n_eff - 2))
    half = float(sps.t.ppf(0.5 + confidence / 2, n_eff - 2) * stderr)
    gain = -fit.slope if lower_is_better else fit.slope  # improvement per doubling of steps
    lo, hi = gain - half, gain + half
    bound = tolerance * abs(float(np.mean(y)))
    verdict = True if hi < bound else False if lo > bound else None
    out = {"plateau": verdict, "gain_per_doubling": float(gain), "ci": (float(lo), float(hi)),
           "bound": bound, "first": pts[0][1], "best": (min if lower_is_better else max)(
               v for _, v in pts), "final": pts[-1][1], "validations": len(pts),
           "window": (window_pts[0][0], window_pts[-1][0], len(window_pts)),
           "autocorrelation": r1, "effective_points": n_eff}
    if verdict is None:
        out["reason"] = "undecided: the interval of the gain per doubling straddles the bound"
    return out
