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
DATASET_NAMES = {"cub": "CUB", "oxford102": "Oxford-102", "coco": "COCO"}


def _seed_values(frame: pd.DataFrame, names: list[str], metric: str) -> list[float]:
    rows = frame[frame["name"].isin(names)] if not frame.empty else frame
    col = f"metrics.{metric}"
    if rows.empty or col not in rows:
        return []
    return [float(v) for v in rows[col].dropna().to_numpy(dtype=float)]


def _stat(frame: pd.DataFrame, names: list[str], metric: str, spread: str | None) -> dict:
    """Across seeds (mean, std, 95 % CI) with two seeds or more; with one, the within-run spread
    (IS over splits, R-precision over folds) stands in for the std and there is no CI."""
    summary = seed_summary(_seed_values(frame, names, metric))
    summary["spread"] = "seeds" if summary["n_seeds"] >= 2 else "none"
    if summary["n_seeds"] == 1 and spread:
        rows = frame[frame["name"].isin(names)]
        within = rows[f"metrics.{spread}"].iloc[0] if f"metrics.{spread}" in rows else math.nan
        summary["std"] = float(within)
        summary["spread"] = "within run" if within == within else "none"
    return summary


def _fmt(stat: dict, digits: int) -> str:
    if stat["n_seeds"] == 0:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat["std"] == stat["std"]:
        text += f" ± {stat['std']:.{digits}f}"
    if stat.get("ci"):
        lo, hi = stat["ci"]
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def _paper(value: dict | None) -> str:
    if not value:
        return "–"
    mark = {"none": " †", "mean": "", "all": ""}[value["confirmed"]]
    return f"{value['mean']:.2f} ± {value['std']:.2f}{mark}"


def build_table(exp: Experiment, frame: pd.DataFrame, seeds: tuple[int, ...],
                human: dict[str, float] | None = None, skipped: dict[str, str] | None = None
                ) -> tuple[pd.DataFrame, dict[str, dict], dict[str, dict[str, list[float]]]]:
    """The table as strings; per run id the means (for figures); per run id and metric the
    per-seed values (for the claims' tests). Cells: mean ± std [95 % CI] over seeds, or with
    one seed mean ± the within-run spread."""
    rows, stats, seed_values = [], {}, {}
    for row in exp.rows:
        spec = exp.runs[row.run]
        # A row not run at this scale shows no values, even if an earlier run left some in the
        # store: a table mixes no scales.
        names = [] if (skipped or {}).get(row.run) else [f"{row.run}-s{s}" for s in seeds]
        out = {}
        if len({r.dataset for r in exp.runs.values()}) > 1:
            out["dataset"] = DATASET_NAMES[spec.dataset]
        out.update(row.columns)
        if row.footnote and "model" in out:
            out["model"] = f"{out['model']} ‡"
        per_metric = {label: _stat(frame, names, m, spread) for label, m, spread, _ in METRICS}
        stats[row.run] = {label: s["mean"] for label, s in per_metric.items()}
        seed_values[row.run] = {label: _seed_values(frame, names, m) for label, m, _, _ in METRICS}
        is_stat = per_metric["IS"]
        out["IS (ours)"] = _fmt(is_stat, 2) if not (skipped or {}).get(row.run) else "not run"
        out["IS (paper)"] = _paper(row.paper.get("is"))
        if "human_rank" in exp.metrics:
            ours = (human or {}).get(row.run)
            stats[row.run]["human_rank"] = ours if ours is not None else math.nan
            seed_values[row.run]["human_rank"] = [ours] if ours is not None else []
            out["human rank (ours)"] = f"{ours:.2f}" if ours is not None else "–"
            out["human rank (paper)"] = _paper(row.paper.get("human_rank"))
        for label, _, _, digits in METRICS[1:]:
            out[label] = _fmt(per_metric[label], digits)
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
        for label, m, spread, digits in METRICS:
            key = "IS (ours)" if label == "IS" else label
            out[key] = _fmt(_stat(frame, ["ceiling"], m, spread), digits)
        n = ceiling["tags.eval.n_images"].iloc[0] if "tags.eval.n_images" in ceiling else "–"
        out["samples"], out["seeds"] = n if n == n else "–", "–"
        rows.append(out)
    table = pd.DataFrame(rows).fillna("").rename(columns={"ca": "CA", "text_twice": "text twice"})
    return table, stats, seed_values


def check_claims(exp: Experiment, seed_values: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Each of the paper's claims, pair by pair, tested over seeds (``reports.stats``)."""
    labels = {"is": "IS", "human_rank": "human_rank"}
    claims = [{"claim": c.claim, "metric": labels.get(c.metric, c.metric), "pairs": list(c.pairs),
               "lower_is_better": c.lower_is_better} for c in exp.claims]
    results = evaluate_claims(claims, seed_values)
    for result, claim in zip(results, exp.claims, strict=True):
        result["metric"] = claim.metric
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


def claims_markdown(claims: list[dict]) -> str:
    lines = ["| the paper's claim | pair (better > worse) | means | p | p (Holm) | verdict |",
             "|---|---|---|---|---|---|"]
    for c in claims:
        for pair in c["pairs"]:
            means = f"{pair['mean_better']:.3g} vs {pair['mean_worse']:.3g}"
            lines.append(f"| {markdown_cell(c['claim'])} | {markdown_cell(pair['better'])} > "
                         f"{markdown_cell(pair['worse'])} | {means} | "
                         f"{_p(pair['p'])} | {_p(pair['p_holm'])} | **{pair['verdict']}** |")
    test = claims[0]["test"] if claims else ""
    return "\n".join(lines) + (f"\n\nTest: {test}.\n" if test else "\n")
