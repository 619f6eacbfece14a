"""The paper's tables from our runs: one row per experiment row, our numbers beside the paper's,
the real-data ceiling, the number of samples and seeds, mean ± std across seeds, and whether
each of the paper's orderings holds in our numbers.

Markdown and LaTeX are formatted here (a few lines each) rather than through pandas, whose
``to_markdown``/``to_latex`` need tabulate/jinja2, which are not dependencies of this project.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.experiments.spec import Experiment

# Our metric columns: (label, MLflow metric, within-run spread metric, digits).
METRICS = [("IS", "eval.is_mean", "eval.is_std", 2), ("IS*", "eval.is_star_mean", "eval.is_star_std", 2),
           ("FID", "eval.fid", None, 1), ("KID", "eval.kid_mean", "eval.kid_std", 3),
           ("R-prec", "eval.rprec_mean", "eval.rprec_std", 3), ("attr", "eval.attr_mean", "eval.attr_std", 3)]
DATASET_NAMES = {"cub": "CUB", "oxford102": "Oxford-102", "coco": "COCO"}


def _stat(frame: pd.DataFrame, names: list[str], metric: str, spread: str | None) -> dict:
    rows = frame[frame["name"].isin(names)] if not frame.empty else frame
    col = f"metrics.{metric}"
    if rows.empty or col not in rows or rows[col].isna().all():
        return {"mean": math.nan, "std": math.nan, "n_seeds": 0, "spread": "none"}
    values = rows[col].dropna().to_numpy(dtype=float)
    if len(values) >= 2:
        return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "n_seeds": len(values),
                "spread": "seeds"}
    within = rows[f"metrics.{spread}"].iloc[0] if spread and f"metrics.{spread}" in rows else math.nan
    return {"mean": float(values[0]), "std": float(within), "n_seeds": 1,
            "spread": "within run" if within == within else "none"}


def _fmt(stat: dict, digits: int) -> str:
    if stat["n_seeds"] == 0:
        return "–"
    if stat["std"] != stat["std"]:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _paper(value: dict | None) -> str:
    if not value:
        return "–"
    mark = {"none": " †", "mean": "", "all": ""}[value["confirmed"]]
    return f"{value['mean']:.2f} ± {value['std']:.2f}{mark}"


def build_table(exp: Experiment, frame: pd.DataFrame, seeds: tuple[int, ...],
                human: dict[str, float] | None = None, skipped: dict[str, str] | None = None
                ) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The table as strings, and per run id the numeric stats (for claims and figures)."""
    rows, stats = [], {}
    for row in exp.rows:
        spec = exp.runs[row.run]
        names = [f"{row.run}-s{s}" for s in seeds]
        out = {}
        if len({r.dataset for r in exp.runs.values()}) > 1:
            out["dataset"] = DATASET_NAMES[spec.dataset]
        out.update(row.columns)
        if row.footnote and "model" in out:
            out["model"] = f"{out['model']} ‡"
        per_metric = {label: _stat(frame, names, m, spread) for label, m, spread, _ in METRICS}
        stats[row.run] = {label: s["mean"] for label, s in per_metric.items()}
        is_stat = per_metric["IS"]
        out["IS (ours)"] = _fmt(is_stat, 2) if not (skipped or {}).get(row.run) else "not run"
        out["IS (paper)"] = _paper(row.paper.get("is"))
        if "human_rank" in exp.metrics:
            ours = (human or {}).get(row.run)
            stats[row.run]["human_rank"] = ours if ours is not None else math.nan
            out["human rank (ours)"] = f"{ours:.2f}" if ours is not None else "–"
            out["human rank (paper)"] = _paper(row.paper.get("human_rank"))
        for label, _, _, digits in METRICS[1:]:
            out[label] = _fmt(per_metric[label], digits)
        sub = frame[frame["name"].isin(names)] if not frame.empty else frame
        n_images = sub["tags.eval.n_images"].dropna().unique().tolist() if "tags.eval.n_images" in sub else []
        out["samples"] = ",".join(str(n) for n in n_images) or "–"
        out["seeds"] = is_stat["n_seeds"]
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
    return table, stats


def check_claims(exp: Experiment, stats: dict[str, dict]) -> list[dict]:
    out = []
    for claim in exp.claims:
        label = {"is": "IS", "human_rank": "human_rank"}.get(claim.metric, claim.metric)
        verdicts = []
        for better, worse in claim.pairs:
            a, b = stats.get(better, {}).get(label, math.nan), stats.get(worse, {}).get(label, math.nan)
            if a != a or b != b:
                verdicts.append(None)
            else:
                verdicts.append(a < b if claim.lower_is_better else a > b)
        known = [v for v in verdicts if v is not None]
        status = ("not measured" if not known else "holds" if all(known)
                  else "does not hold" if not any(known) else "partly")
        out.append({"claim": claim.claim, "metric": claim.metric, "status": status,
                    "pairs": [{"better": p[0], "worse": p[1], "holds": v}
                              for p, v in zip(claim.pairs, verdicts, strict=True)]})
    return out


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


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


def claims_markdown(claims: list[dict]) -> str:
    lines = ["| the paper's claim | in our numbers | pairs (better > worse) |", "|---|---|---|"]
    for c in claims:
        pairs = "; ".join(f"{p['better']} vs {p['worse']}: "
                          + {True: "yes", False: "no", None: "–"}[p["holds"]] for p in c["pairs"])
        lines.append(f"| {c['claim']} | **{c['status']}** | {pairs} |")
    return "\n".join(lines) + "\n"


