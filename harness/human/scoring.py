"""Human-rank scoring: the average rank per model (1 = best) with its spread across raters and
a bootstrap 95% CI over raters and items, and agreement between raters: Kendall's W for the
ranks, Krippendorff's α (ordinal) for the optional 5-point ratings.

Kendall's W is written here (a few lines; scipy has no W): for one item with m raters ranking
n groups without ties, W = 12·S / (m²·(n³ − n)), S the squared deviations of the groups' rank
sums from their mean; it relates to Friedman's statistic as χ² = m·(n − 1)·W (checked against
scipy in the tests). Krippendorff's α comes from the ``krippendorff`` package.
"""

from __future__ import annotations

import numpy as np

from harness.human.responses import Response


def kendalls_w(ranks: np.ndarray) -> float:
    """``ranks``: raters × objects, each row a ranking 1..n without ties."""
    m, n = ranks.shape
    if m < 2 or n < 2:
        return float("nan")
    sums = ranks.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    return 12.0 * s / (m ** 2 * (n ** 3 - n))


def krippendorff_alpha(matrix: np.ndarray, level: str = "ordinal") -> float:
    """``matrix``: raters × units with NaN where a rater gave no value."""
    import krippendorff

    values = matrix[~np.isnan(matrix)]
    pairable = (np.sum(~np.isnan(matrix), axis=0) >= 2).sum()
    if pairable == 0 or len(np.unique(values)) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def rank_tensor(study: dict, key: dict, responses: list[Response]) -> tuple[np.ndarray, list[str], list[str]]:
    """Ranks as raters × regular items × models, and the model and item ids in that order."""
    models = list(key["models"])
    items = [it for it in study["items"] if it["kind"] == "regular"]
    out = np.zeros((len(responses), len(items), len(models)))
    for r, resp in enumerate(responses):
        for i, item in enumerate(items):
            for gid, rank in resp.answers[item["item_id"]]["ranks"].items():
                out[r, i, models.index(key["groups"][gid])] = rank
    return out, models, [it["item_id"] for it in items]


def _rating_matrix(study: dict, key: dict, responses: list[Response], scale: str) -> np.ndarray:
    units = [(it["item_id"], g["group_id"]) for it in study["items"] if it["kind"] == "regular"
             for g in it["groups"]]
    out = np.full((len(responses), len(units)), np.nan)
    for r, resp in enumerate(responses):
        for u, (item_id, gid) in enumerate(units):
            value = (resp.answers[item_id].get(scale) or {}).get(gid)
            if value is not None:
                out[r, u] = value
    return out


def _model_means(study, key, responses, scale: str) -> dict[str, float]:
    sums: dict[str, list[float]] = {m: [] for m in key["models"]}
    for resp in responses:
        for item in study["items"]:
            if item["kind"] != "regular":
                continue
            for gid, v in (resp.answers[item["item_id"]].get(scale) or {}).items():
                sums[key["groups"][gid]].append(v)
    return {m: (float(np.mean(v)) if v else float("nan")) for m, v in sums.items()}


def score(study: dict, key: dict, responses: list[Response], bootstrap: int = 2000,
          seed: int = 0) -> dict:
    if not responses:
        return {"models": {}, "raters": 0, "items": 0, "note": "no valid responses"}
    ranks, models, _ = rank_tensor(study, key, responses)
    n_raters, n_items, _ = ranks.shape
    per_rater = ranks.mean(axis=1)  # raters × models
    rng = np.random.default_rng(seed)
    boots = np.empty((bootstrap, len(models)))
    for b in range(bootstrap):
        rs = rng.integers(0, n_raters, n_raters)
        its = rng.integers(0, n_items, n_items)
        boots[b] = ranks[rs][:, its].mean(axis=(0, 1))
    low, high = np.percentile(boots, [2.5, 97.5], axis=0)
    alignment = _model_means(study, key, responses, "alignment")
    realism = _model_means(study, key, responses, "realism")
    table = {}
    for j, m in enumerate(models):
        table[m] = {"mean_rank": float(ranks[:, :, j].mean()),
                    "std_across_raters": float(per_rater[:, j].std(ddof=1)) if n_raters > 1 else 0.0,
                    "std_all": float(ranks[:, :, j].std()),
                    "ci95": [float(low[j]), float(high[j])], "n": int(n_raters * n_items),
                    "alignment": alignment[m], "realism": realism[m]}
    w_items = [kendalls_w(ranks[:, i, :]) for i in range(n_items)]
    agreement = {"kendall_w_mean": float(np.nanmean(w_items)) if n_raters > 1 else float("nan"),
                 "kendall_w_median": float(np.nanmedian(w_items)) if n_raters > 1 else float("nan"),
                 "alpha_alignment": krippendorff_alpha(_rating_matrix(study, key, responses, "alignment")),
                 "alpha_realism": krippendorff_alpha(_rating_matrix(study, key, responses, "realism"))}
    out = {"models": table, "agreement": agreement, "raters": n_raters, "items": n_items,
           "bootstrap": {"resamples": bootstrap, "seed": seed, "over": "raters and items"},
           "comparisons": compare_models(ranks, models, bootstrap, seed)}
    classes = [it.get("class_id") for it in study["items"] if it["kind"] == "regular"]
    if classes and all(c is not None for c in classes):  # studies made before class ids: none
        out["per_class"] = per_class(ranks, models, classes)
    return out


def per_class(ranks: np.ndarray, models: list[str], classes: list) -> dict:
    """Average rank per model within each class's descriptions (all raters), with the number of
    descriptions: where a model wins or loses, class by class."""
    classes = np.asarray(classes)
    out = {}
    for cls in sorted(set(classes.tolist())):
        sel = ranks[:, classes == cls, :]
        out[str(cls)] = {"items": int(sel.shape[1]),
                         "mean_rank": {m: float(sel[:, :, j].mean()) for j, m in enumerate(models)}}
    return out


def per_class_table(result: dict) -> str:
    models = list(result["models"])
    lines = ["| class | descriptions | " + " | ".join(models) + " |",
             "|---|---|" + "---|" * len(models)]
    for cls, row in result.get("per_class", {}).items():
        lines.append(f"| {cls} | {row['items']} | "
                     + " | ".join(f"{row['mean_rank'][m]:.2f}" for m in models) + " |")
    return "\n".join(lines) + "\n"


def compare_models(ranks: np.ndarray, models: list[str], bootstrap: int = 2000,
                   seed: int = 0) -> dict:
    """Are the models' ranks different, and which pairs? Over raters (each rater's mean rank of a
    model across descriptions is one observation, so descriptions are not counted as
    independent raters): Friedman's test across all models (scipy), and per pair a Wilcoxon
    signed-rank test of the raters' mean-rank differences (scipy; two-sided), with the
    difference's bootstrap distribution over raters and descriptions (percentile intervals at
    any level are read off it). A difference < 0 means the first model is ranked better."""
    from scipy import stats as sps

    n_raters, n_items, n_models = ranks.shape
    per_rater = ranks.mean(axis=1)
    out: dict = {"over": "raters (each rater's mean rank per model)", "raters": int(n_raters),
                 "items": int(n_items), "bootstrap": bootstrap, "seed": seed}
    if n_raters >= 2 and n_models >= 3 and np.ptp(per_rater) > 0:
        stat = sps.friedmanchisquare(*per_rater.T)
        out["friedman"] = {"chi2": float(stat.statistic), "p": float(stat.pvalue), "df": n_models - 1}
    else:
        out["friedman"] = None
    rng = np.random.default_rng(seed)
    picks = [(rng.integers(0, n_raters, n_raters), rng.integers(0, n_items, n_items))
             for _ in range(bootstrap)]
    pairs = {}
    for a in range(n_models):
        for b in range(a + 1, n_models):
            d = per_rater[:, a] - per_rater[:, b]
            if n_raters < 2 or not np.any(d):
                p = 1.0 if not np.any(d) else float("nan")
            else:
                p = float(sps.wilcoxon(d, zero_method="zsplit").pvalue)
            diffs = ranks[:, :, a] - ranks[:, :, b]
            boot = [float(diffs[rs][:, its].mean()) for rs, its in picks]
            pairs[f"{models[a]}|{models[b]}"] = {"difference": float(d.mean()), "p": p,
                                                 "samples": boot}
    out["pairs"] = pairs
    return out


def pair_test(comparisons: dict, first: str, second: str) -> dict | None:
    """The comparison of ``first`` with ``second`` (difference = first − second), whichever order
    it was stored in."""
    pairs = comparisons.get("pairs", {})
    if f"{first}|{second}" in pairs:
        return pairs[f"{first}|{second}"]
    if f"{second}|{first}" in pairs:
        stored = pairs[f"{second}|{first}"]
        return {"difference": -stored["difference"], "p": stored["p"],
                "samples": [-x for x in stored["samples"]]}
    return None


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if x != x else f"{x:.{digits}f}"


def markdown_table(result: dict, paper: dict | None = None) -> str:
    """A table like the paper's Table 1 (human rank rows), with the paper's values if given."""
    lines = ["| model | average human rank (1 = best) | 95% CI | ratings | alignment | realism |"
             + (" paper |" if paper else ""),
             "|---|---|---|---|---|---|" + ("---|" if paper else "")]
    for m, row in sorted(result["models"].items(), key=lambda kv: kv[1]["mean_rank"]):
        cells = [m, f"{row['mean_rank']:.2f} ± {row['std_across_raters']:.2f}",
                 f"{row['ci95'][0]:.2f}–{row['ci95'][1]:.2f}", str(row["n"]),
                 _fmt(row["alignment"]), _fmt(row["realism"])]
        if paper:
            cells.append(paper.get(m, "–"))
        lines.append("| " + " | ".join(cells) + " |")
    a = result.get("agreement", {})
    lines += ["", f"{result['raters']} raters × {result['items']} descriptions. ± is the std across "
              "raters of each rater's average rank; the CI resamples raters and descriptions.",
              f"Agreement: Kendall's W {_fmt(a.get('kendall_w_mean', float('nan')), 3)} (mean over "
              f"descriptions); Krippendorff's α (ordinal) alignment "
              f"{_fmt(a.get('alpha_alignment', float('nan')), 3)}, realism "
              f"{_fmt(a.get('alpha_realism', float('nan')), 3)}."]
    return "\n".join(lines) + "\n"
