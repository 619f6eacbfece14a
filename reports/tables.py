"""The paper's tables from our runs: one row per experiment row, our numbers beside the paper's,
the real-data ceiling, the number of samples and seeds, mean ± std across seeds, and whether
each of the paper's orderings holds in our numbers.

Markdown and LaTeX are formatted here (a few lines each) rather than through pandas, whose
``to_markdown``/``to_latex`` need tabulate/jinja2, which are not dependencies of this project.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.cells import markdown_cell, spreadsheet_cell
from harness.experiments.spec import Experiment
from reports.stats import evaluate_claims, seed_summary

# Our metric columns: (label, MLflow metric, within-run spread metric, digits).
METRICS = [("IS", "eval.is_mean", "eval.is_std", 2), ("IS*", "eval.is_star_mean", "eval.is_star_std", 2),
           ("FID", "eval.fid", None, 1), ("KID", "eval.kid_mean", "eval.kid_std", 3),
           ("R-prec", "eval.rprec_mean", "eval.rprec_std", 3), ("attr", "eval.attr_mean", "eval.attr_std", 3)]
# Column names: FID and KID are computed on the dataset classifier's block-3 features (the
# evaluation's extractor below the Inception weights), so they are labelled by that feature
# space, not as the Inception FID of the literature.
COLUMN = {"FID": "FD (classifier)", "KID": "KD (classifier)"}
# What a metric's within-run spread is taken over (its "±" when a row has one seed).
WITHIN_RUN = {"IS": "splits", "IS*": "splits", "KID": "subsets", "R-prec": "folds", "attr": "images"}
DATASET_NAMES = {"cub": "CUB", "oxford102": "Oxford-102", "coco": "COCO"}


def _seed_of(name: str) -> int | None:
    tail = name.rsplit("-s", 1)[-1]
    return int(tail) if tail.isdigit() else None


def row_seeds(frame: pd.DataFrame, run: str, seeds: tuple[int, ...]) -> list[int]:
    """The scale's seeds and any seed ``reproduce --decide`` added to this row."""
    found = set(seeds)
    if not frame.empty:
        for name in frame["name"].dropna():
            if name.startswith(f"{run}-s") and _seed_of(name) is not None \
                    and name == f"{run}-s{_seed_of(name)}":
                found.add(_seed_of(name))
    return sorted(found)


def _seed_values(frame: pd.DataFrame, names: list[str], metric: str) -> dict[int, float]:
    """{seed: value} of the runs ``names`` (``<row>-s<seed>``)."""
    rows = frame[frame["name"].isin(names)] if not frame.empty else frame
    col = f"metrics.{metric}"
    if rows.empty or col not in rows:
        return {}
    out = {}
    for name, value in zip(rows["name"], rows[col], strict=True):
        seed = _seed_of(name)
        if value == value:
            out[0 if seed is None else seed] = float(value)  # the ceiling has no seed
    return dict(sorted(out.items()))


def _stat(frame: pd.DataFrame, names: list[str], metric: str, spread: str | None) -> dict:
    """Across seeds (mean, SD, 95 % CI) with two seeds or more; with one, the within-run spread
    (IS over splits, R-precision over folds) stands in for the SD and there is no CI. Every
    summary says which spread its "±" is (``spread``)."""
    summary = seed_summary(list(_seed_values(frame, names, metric).values()))
    summary["spread"] = "seeds" if summary["n_seeds"] >= 2 else "none"
    if summary["n_seeds"] == 1 and spread:
        rows = frame[frame["name"].isin(names)]
        within = rows[f"metrics.{spread}"].iloc[0] if f"metrics.{spread}" in rows else math.nan
        summary["std"] = float(within)
        summary["spread"] = "within run" if within == within else "none"
    return summary


def _fmt(stat: dict, digits: int, within: str = "") -> str:
    """mean ± SD (over what) [95 % CI]: 'seeds' for the SD across seeds, the within-run unit
    (splits, folds, …) for one seed's spread."""
    if stat["n_seeds"] == 0:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat["std"] == stat["std"]:
        word = "seeds" if stat["spread"] == "seeds" else within or "within run"
        text += f" ± {stat['std']:.{digits}f} ({word})"
    if stat.get("ci"):
        lo, hi = stat["ci"]
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def _per_seed(values: dict[int, float], digits: int) -> str:
    return "; ".join(f"s{s}: {v:.{digits}f}" for s, v in values.items()) or "–"


def _paper(value: dict | None) -> str:
    if not value:
        return "–"
    mark = {"none": " †", "mean": "", "all": ""}[value["confirmed"]]
    return f"{value['mean']:.2f} ± {value['std']:.2f} (splits){mark}"


def build_table(exp: Experiment, frame: pd.DataFrame, seeds: tuple[int, ...],
                human: dict[str, float] | None = None, skipped: dict[str, str] | None = None
                ) -> tuple[pd.DataFrame, dict[str, dict], dict[str, dict[str, list[float]]]]:
    """The table as strings; per run id the means (for figures); per run id and metric the
    per-seed values ``{seed: value}`` (for the claims' tests). Cells: mean ± SD (seeds) [95 %
    CI] over seeds, or with one seed mean ± the within-run spread, named; the IS values of every
    seed in their own column."""
    rows, stats, seed_values = [], {}, {}
    for row in exp.rows:
        spec = exp.runs[row.run]
        # A row not run at this scale shows no values, even if an earlier run left some in the
        # store: a table mixes no scales.
        names = ([] if (skipped or {}).get(row.run) else
                 [f"{row.run}-s{s}" for s in row_seeds(frame, row.run, seeds)])
        out = {}
        if len({r.dataset for r in exp.runs.values()}) > 1:
            out["dataset"] = DATASET_NAMES[spec.dataset]
        out.update(row.columns)
        if row.footnote and "model" in out:
            out["model"] = f"{out['model']} ‡"
        per_metric = {label: _stat(frame, names, m, spread) for label, m, spread, _ in METRICS}
        stats[row.run] = {label: s["mean"] for label, s in per_metric.items()}
        seed_values[row.run] = {label: _seed_values(frame, names, m) for label, m, _, _ in METRICS}
        for label, _, spread, _ in METRICS:  # the within-run spread of each seed's run
            if spread:
                seed_values[row.run][f"{label} within"] = _seed_values(frame, names, spread)
        is_stat = per_metric["IS"]
        out["IS (ours)"] = (_fmt(is_stat, 2, WITHIN_RUN["IS"]) if not (skipped or {}).get(row.run)
                            else "not run")
        out["IS (paper)"] = _paper(row.paper.get("is"))
        if "human_rank" in exp.metrics:
            ours = (human or {}).get(row.run)
            stats[row.run]["human_rank"] = ours if ours is not None else math.nan
            seed_values[row.run]["human_rank"] = {0: ours} if ours is not None else {}
            out["human rank (ours)"] = f"{ours:.2f}" if ours is not None else "–"
            out["human rank (paper)"] = _paper(row.paper.get("human_rank"))
        for label, _, _, digits in METRICS[1:]:
            out[COLUMN.get(label, label)] = _fmt(per_metric[label], digits, WITHIN_RUN.get(label, ""))
        out["IS per seed"] = _per_seed(seed_values[row.run]["IS"], 2)
        sub = frame[frame["name"].isin(names)] if not frame.empty else frame
        n_images = sub["tags.eval.n_images"].dropna().unique().tolist() if "tags.eval.n_images" in sub else []
        out["samples"] = ",".join(str(n) for n in n_images) or "–"
        out["seeds"] = max((s["n_seeds"] for s in per_metric.values()), default=0)
        if (skipped or {}).get(row.run):
            out["note"] = skipped[row.run]
        rows.append(out)
    ceiling = frame[frame["name"] == "ceiling"] if not frame.empty else frame
    if not ceiling.empty:
        out = {k: "" for k in (rows[0] if rows else {})}
        out["model"] = "real images (ceiling)"
        if "dataset" in out:
            out["dataset"] = DATASET_NAMES["cub"]
        splits = (ceiling["tags.eval.isc_splits"].iloc[0]
                  if "tags.eval.isc_splits" in ceiling else None)
        for label, m, spread, digits in METRICS:
            key = "IS (ours)" if label == "IS" else COLUMN.get(label, label)
            stat = _stat(frame, ["ceiling"], m, spread)
            if label in ("IS", "IS*") and pd.notna(splits):
                # Splits of a model's split size (harness.eval.evaluate.ceiling_request): say how
                # many; one split has no spread to show.
                k = int(float(splits))
                if k == 1:
                    stat = {**stat, "std": math.nan}
                out[key] = _fmt(stat, digits, f"{k} splits") + (" (1 split)" if k == 1 else "")
            else:
                out[key] = _fmt(stat, digits, WITHIN_RUN.get(label, ""))
        n = ceiling["tags.eval.n_images"].iloc[0] if "tags.eval.n_images" in ceiling else "–"
        out["samples"], out["seeds"] = n if n == n else "–", "–"
        rows.append(out)
    table = pd.DataFrame(rows).fillna("").rename(columns={"ca": "CA", "text_twice": "text twice"})
    return table, stats, seed_values


DELTA_SHARE = 0.5
DELTA_REASON = ("δ = half the paper's relative effect for the pair, times our worse run's mean: a "
                "difference inside ±δ means the paper's effect is not there at half its size or more")


def claim_design(exp: Experiment, claim, seed_values: dict) -> dict:
    """Per pair: paired (both are Stage-II runs on the same Stage-I run, so seed s of each shares
    its Stage-I), the equivalence margin δ and the paper's effect, both in our units (the paper's
    relative effect times our worse run's mean)."""
    label = {"is": "IS"}.get(claim.metric, claim.metric)
    paper = {r.run: r.paper.get(claim.metric) for r in exp.rows}
    paired, delta, target = [], [], []
    for better, worse in claim.pairs:
        s1 = exp.runs[better].stage1
        paired.append(bool(s1) and s1 == exp.runs[worse].stage1)
        pb, pw = paper.get(better), paper.get(worse)
        ours = list(seed_values.get(worse, {}).get(label, {}).values())
        if pb and pw and pw["mean"] and ours:
            relative = abs(pb["mean"] - pw["mean"]) / abs(pw["mean"])
            scale = abs(sum(ours) / len(ours))
            target.append(relative * scale)
            delta.append(DELTA_SHARE * relative * scale)
        else:
            target.append(math.nan)
            delta.append(math.nan)
    return {"paired": paired, "delta": delta, "paper_effect": target}


HUMAN_METHOD = ("Wilcoxon signed-rank over raters' mean ranks; interval: bootstrap percentile "
                "over raters and descriptions")


def human_tests(exp: Experiment, comparisons: dict | None) -> dict[tuple[str, str], dict]:
    """The human-rank claims' pairs, tested over raters by ``human score``
    (``harness.human.scoring.compare_models``)."""
    from harness.human.scoring import pair_test

    out = {}
    for claim in exp.claims:
        if claim.metric != "human_rank" or not comparisons:
            continue
        for better, worse in claim.pairs:
            found = pair_test(comparisons, better, worse)
            if found is not None:
                out[(better, worse)] = {**found, "n": comparisons["raters"], "method": HUMAN_METHOD}
    return out


def check_claims(exp: Experiment, seed_values: dict[str, dict[str, dict]],
                 not_judged: dict[str, str] | None = None,
                 human_comparisons: dict | None = None) -> list[dict]:
    """Each of the paper's claims, pair by pair, decided over seeds (``reports.stats``), the
    human-rank ones over raters; rows in ``not_judged`` (not levelled off) are not judged."""
    labels = {"is": "IS", "human_rank": "human_rank"}
    claims = [{"claim": c.claim, "metric": labels.get(c.metric, c.metric), "pairs": list(c.pairs),
               "lower_is_better": c.lower_is_better, "delta_reason": DELTA_REASON,
               **claim_design(exp, c, seed_values)} for c in exp.claims]
    results = evaluate_claims(claims, seed_values, not_judged,
                              tests=human_tests(exp, human_comparisons))
    for result, claim in zip(results, exp.claims, strict=True):
        result["metric"] = claim.metric
        for pair in result["pairs"]:  # the bootstrap draws stay in the study's score.json
            if "samples" in pair:
                pair["samples"] = len(pair.pop("samples"))
    return results


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(markdown_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(markdown_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """The table as CSV; text cells a spreadsheet would run as formulas are quoted as text."""
    safe = table.rename(columns=spreadsheet_cell)
    for col in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[col]):
            safe[col] = safe[col].map(lambda v: spreadsheet_cell(v) if isinstance(v, str) else v)
    return safe.to_csv(index=False)


_LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
          "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
          "±": r"$\pm$", "×": r"$\times$", "–": "--", "†": r"$^\dagger$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, caption: str) -> str:
    cols = list(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(cols) + "}",
             r"\toprule", " & ".join(_latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        lines.append(" & ".join(_latex_escape(row[c]) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + _latex_escape(caption) + "}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def _p(value: float) -> str:
    return "–" if value != value else f"{value:.3g}"


def _g(value: float, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}g}"


def pair_cells(pair: dict) -> dict[str, str]:
    """One claim pair's cells, as the Markdown and HTML tables show them."""
    n = f"{pair['n_better']}/{pair['n_worse']}" + (" paired" if pair.get("paired") else "")
    means = f"{_g(pair['mean_better'])} vs {_g(pair['mean_worse'])}"
    if "ci" in pair:
        lo, hi = pair["ci"]
        diff = (f"{_g(pair['difference'])} [{_g(lo)}, {_g(hi)}] "
                f"({100 * (1 - pair['level']):.4g} % CI)")
        effect = _g(pair["effect"], 2)
        power = (f"MDE {_g(pair['mde'])}; paper's effect {_g(pair['paper_effect'])} needs "
                 f"{'–' if pair['seeds_needed'] != pair['seeds_needed'] else int(pair['seeds_needed'])}"
                 " seeds")
    else:
        diff, effect, power = "–", "–", "–"
    return {"pair": f"{pair['better']} > {pair['worse']}", "seeds": n, "means": means,
            "difference": diff, "effect": effect, "delta": _g(pair.get("delta")),
            "p": f"{_p(pair['p'])} / {_p(pair['p_holm'])}", "power": power,
            "verdict": pair["verdict"]}


CLAIM_COLUMNS = ("the paper's claim", "pair (better > worse)", "seeds", "means",
                 "difference [Holm-level CI]", "effect (g / d_z)", "δ", "p / p (Holm)",
                 "power (80 %)", "verdict")


def claims_markdown(claims: list[dict]) -> str:
    lines = ["| " + " | ".join(CLAIM_COLUMNS) + " |", "|" + "---|" * len(CLAIM_COLUMNS)]
    for c in claims:
        for pair in c["pairs"]:
            cells = pair_cells(pair)
            lines.append("| " + " | ".join(
                [markdown_cell(c["claim"]),
                 f"{markdown_cell(pair['better'])} > {markdown_cell(pair['worse'])}"]
                + [markdown_cell(cells[k]) for k in ("seeds", "means", "difference", "effect",
                                                        "delta", "p", "power")]
                + [f"**{markdown_cell(cells['verdict'])}**"]) + " |")
    test = claims[0]["test"] if claims else ""
    reason = next((c.get("delta_reason") for c in claims if c.get("delta_reason")), "")
    notes = []
    if test:
        notes.append(f"Test: {test}. The difference is in the claim's direction (positive: the "
                     "paper's ordering); its interval is at the pair's Holm level, so *supported* "
                     "and *reversed* are Holm's decisions. MDE: the smallest difference these seeds "
                     "detect with 80 % power at that level; 'needs': seeds per run to detect the "
                     "paper's effect. A *not judged* pair (a run that has not shown it levelled "
                     "off) still shows its difference, at the plain 95 % level: it is outside "
                     "Holm's family and gets no verdict.")
    if reason:
        notes.append(reason + ".")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"
