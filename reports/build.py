"""``stackgan-bench report``: MLflow runs -> ``<runs>/reports/<experiment>/`` (Table in Markdown, CSV
and LaTeX beside the paper's numbers, the paper's claims checked, figures, ``index.html``), all
logged to MLflow as well."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from harness.atomic import write_text_atomic
from harness.cells import markdown_cell
from harness.eval.protocols import resolve as resolve_protocol
from harness.experiments.plan import plan_runs
from harness.experiments.spec import load_experiment, load_scales
from harness.tracking.mlflow_tracker import Tracker, default_uri
from reports import figures
from reports.collect import curves, human_scores, runs_frame
from reports.stats import TEST_NAME, seed_summary
from reports.tables import (
    CLAIM_COLUMNS,
    METRICS,
    build_table,
    check_claims,
    claims_markdown,
    pair_cells,
    to_csv,
    to_latex,
    to_markdown,
)


def _eval_samples(run_dir: Path) -> Path | None:
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    samples = json.loads(path.read_text()).get("samples")
    folder = run_dir / samples if samples else None  # relative to the run (absolute before)
    return folder if folder is not None and folder.exists() else None


def _index_html(title: str, preset: str, table_html: str, claims_html: str, images: list[Path],
                notes: list[str]) -> str:
    figs = "\n".join(f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">'
                     f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>"
                     for p in images)
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:80em;margin:1.5em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:.85em}}td,th{{border:1px solid #ccc;padding:.25em .5em}}
figure{{display:inline-block;margin:1em}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1><p>scale: <b>{html.escape(preset)}</b></p>
{table_html}<h2>The paper's claims in our numbers</h2>{claims_html}<ul>{items}</ul>
<h2>Figures</h2>{figs}</body></html>
"""


def build_report(experiments: list[str], preset: str, runs_root: str | Path,
                 reports_root: str | Path = "reports", progress: bool = True) -> dict:
    runs_root = Path(runs_root)
    scale = load_scales()[preset]
    uri = default_uri(runs_root)
    tracking_experiment = f"stackgan-bench-{preset}"
    frame = runs_frame(uri, tracking_experiment, runs_root)
    key_file = runs_root / "human-study" / "key.json"
    study_id = json.loads(key_file.read_text())["study_id"] if key_file.exists() else None
    human = human_scores(uri, study_id)
    written = {}
    for name in experiments:
        exp = load_experiment(name)
        out = Path(reports_root) / exp.name
        out.mkdir(parents=True, exist_ok=True)
        plan = {p.spec.id: p for p in plan_runs(exp.runs, scale, runs_root) if p.seed == scale.seeds[0]}
        skipped = {k: p.skipped for k, p in plan.items() if p.skipped}
        table, stats, seed_values = build_table(exp, frame, scale.seeds, human, skipped)
        val_curves, plateaus, row_plateaus = _validation(uri, frame, exp, scale.seeds)
        claims = check_claims(exp, seed_values, _not_judged(row_plateaus),
                              _human_comparisons(runs_root, study_id))
        ev = scale.pipeline.eval
        protocol = resolve_protocol(ev.protocol, ev.captions_per_image, ev.per_caption)
        notes = [f"Scale {preset}: {scale.description}; seeds {list(scale.seeds)}.",
                 f"Evaluation protocol {protocol.name}: the first {protocol.captions_per_image} "
                 f"caption(s) of each test image, {protocol.per_caption} image(s) each.",
                 "Cells: mean ± SD (seeds) [95 % CI of the mean] across seeds when there are "
                 "several; with one seed, mean ± the spread within the run, named by what it is "
                 "over (IS: splits, KID: subsets, R-precision: folds, attribute accuracy: images) "
                 "and no CI. The paper's ± is its split SD. 'IS per seed' lists every seed's value.",
                 "Claims: each pair decided by " + TEST_NAME + "; one seed is 'not tested', a row "
                 "not shown to have levelled off (the mean of its seeds' validation curves) is "
                 "'not judged'.",
                 "† the paper's value is remembered, not confirmed in a stored source.",
                 "FD / KD (classifier): Fréchet and kernel distances on the dataset classifier's "
                 "block-3 features, the evaluation's feature space below the paper scale; not the "
                 "Inception FID/KID of the literature, and not comparable with it.",
                 "Below the paper scale the data is the built-in synthbirds, not CUB: compare orderings, "
                 "not absolute values, with the paper."]
        notes += [f"‡ {r.columns.get('model', r.run)}: {r.footnote}" for r in exp.rows if r.footnote]
        if "human_rank" in exp.metrics and not human and study_id is not None:
            notes.append(f"Human ranks appear once the study in {runs_root / 'human-study'} is rated "
                         "and scored (`stackgan-bench human score`).")
        elif "human_rank" in exp.metrics and not human:
            notes.append("No human study at this scale: it needs two of the table's rated models "
                         "trained here.")
        md = [f"# {markdown_cell(exp.title)}", "", *[f"- {markdown_cell(n)}" for n in notes], "",
              to_markdown(table),
              "## The paper's claims in our numbers", "", claims_markdown(claims),
              "## Do the models follow their captions?", "", _follows_captions(exp, frame, scale.seeds),
              "## IS variance: within a run and across seeds", "", _variance_split(exp, seed_values)]
        write_text_atomic(out / "table.md", "\n".join(md))
        write_text_atomic(out / "table.csv", to_csv(table))
        write_text_atomic(out / "table.tex", to_latex(table, exp.title))
        write_text_atomic(out / "claims.json", json.dumps(claims, indent=2))

        images = []
        row_names = {r.run: f"{r.run}-s{scale.seeds[0]}" for r in exp.rows}
        ids = {n: frame.loc[frame["name"] == n, "run_id"].iloc[0] for n in row_names.values()
               if not frame.empty and (frame["name"] == n).any()}
        images.append(figures.training_curves(curves(uri, ids), out / "training_curves.png"))
        ceiling = frame[frame["name"] == "ceiling"]
        labels = [f"{r.columns.get('model', r.run)} ({r.run})" for r in exp.rows]
        for label, metric, spread, _ in METRICS[:1] + METRICS[2:3] + METRICS[4:5]:
            means = [stats[r.run][label] for r in exp.rows]
            sub = [frame[frame["name"] == row_names[r.run]] for r in exp.rows]
            within = [s[f"metrics.{spread}"].iloc[0] if spread and not s.empty and f"metrics.{spread}" in s
                      else float("nan") for s in sub]
            across = [seed_summary(seed_values[r.run][label]) for r in exp.rows]
            stds = [a["std"] if a["n_seeds"] >= 2 else w for a, w in zip(across, within, strict=True)]
            paper = ([r.paper.get("is", {}).get("mean", float("nan")) for r in exp.rows]
                     if label == "IS" else None)
            ceil = (ceiling[f"metrics.{metric}"].iloc[0]
                    if not ceiling.empty and f"metrics.{metric}" in ceiling else None)
            images.append(figures.metric_bars(labels, means, stds, label, out / f"bars_{label}.png",
                                              ceil, paper))
        sample_dirs = {r.run: _eval_samples(runs_root / row_names[r.run]) for r in exp.rows}
        sample_dirs = {k: v for k, v in sample_dirs.items() if v is not None}
        images.append(figures.samples_grid(sample_dirs, out / "samples_per_caption.png"))
        for r in exp.rows:
            folder = runs_root / row_names[r.run] / "figure-samples" / "diversity"
            if folder.exists():
                images.append(figures.noise_grid(folder, out / f"noise_{r.run}.png",
                                                 f"{r.run}: one caption, several noise vectors"))
        stage2 = next((sample_dirs[r.run] for r in exp.rows
                       if r.run in sample_dirs and exp.runs[r.run].kind == "stage2"), None)
        if stage2 is not None:
            images.append(figures.stage_pairs(stage2, out / "stage1_vs_stage2.png"))
        extra_html, extra_md = "", []
        if not val_curves.empty:
            images.append(figures.validation_curves(val_curves, out / "validation_fid.png"))
            rows = [f"| {name} (mean of {p.get('seeds', 0)} seeds) | {_plateau_text(p)} |"
                    for name, p in row_plateaus.items()]
            rows += [f"| {name} | {_plateau_text(p)} |" for name, p in plateaus.items()]
            extra_md += ["## Training: has each row levelled off?", "",
                         "val FID of fixed captions and noise at log-spaced steps "
                         "(validation_fid.png). Levelled off: over the validations of the last "
                         "two doublings of steps, the 95 % CI of the gain per doubling (the slope "
                         "of val FID against log2 step, widened for autocorrelated validations) "
                         "lies below 5 % of the curve's level; still improving: it lies above; "
                         "otherwise undecided. A row is judged by the mean of its seeds' curves, "
                         "the quantity its claims compare (the mean over seeds); pairs with a row "
                         "not levelled off are not judged. Each run's own verdict is listed below "
                         "its row's.", "",
                         "| row or run | levelled off |", "|---|---|", *rows, ""]
            extra_html += ("<h2>Training plateaus</h2><table><tr><th>run</th><th>plateau</th></tr>"
                           + "".join(f"<tr><td>{html.escape(n)}</td><td>{html.escape(_plateau_text(p))}"
                                     "</td></tr>" for n, p in {**row_plateaus, **plateaus}.items())
                           + "</table>")
        validity_file = runs_root / "validity" / "validity.json"
        if validity_file.exists():
            from harness.eval.validity import format_table

            report = json.loads(validity_file.read_text())
            write_text_atomic(out / "validity.json", json.dumps(report, indent=2))
            images.append(figures.validity_plot(report, out / "metric_validity.png"))
            extra_md += ["## Is the ruler sensitive? Metric validity", "",
                         f"Real test images and degradations of them at {report['settings']['size']} px, "
                         f"{report['settings']['ci']} (metric_validity.png, validity.json).", "",
                         format_table(report)]
            extra_html += ("<h2>Metric validity</h2><pre>" + html.escape(format_table(report)) + "</pre>")
        if extra_md:
            write_text_atomic(out / "table.md", (out / "table.md").read_text() + "\n" + "\n".join(extra_md))
        images = [p for p in images if p is not None]
        write_text_atomic(out / "index.html", _index_html(
            exp.title, preset, table.to_html(index=False, escape=True),
            _claims_html(claims) + extra_html, images, notes))
        tracker = Tracker(uri, tracking_experiment, runs_root / f"report-{exp.name}",
                          f"report-{exp.name}", reopen=False)
        tracker.set_tags({"family": "report", "experiment": exp.name})
        for path in ["table.md", "table.csv", "table.tex", "claims.json", "index.html",
                     *[p.name for p in images]]:
            tracker.log_artifact(out / path)
        tracker.end()
        written[exp.name] = str(out)
    return {"reports": written}


def _validation(uri: str, frame, exp, seeds) -> tuple:
    """val.fid curves of every row's runs (all seeds), each run's plateau verdict, and each
    row's: the verdict on the mean of its seeds' curves, at the steps every seed validated."""
    import pandas as pd

    from reports.stats import plateau
    from reports.tables import row_seeds

    rows, verdicts, row_verdicts = [], {}, {}
    for r in exp.rows:
        per_seed, unvalidated = {}, []
        for seed in row_seeds(frame, r.run, seeds):
            name = f"{r.run}-s{seed}"
            match = frame[frame["name"] == name] if not frame.empty else frame
            if match.empty:
                continue
            history = curves(uri, {name: match["run_id"].iloc[0]}, keys=("val.fid",))
            if history.empty:
                unvalidated.append(seed)
                continue
            history = history.sort_values("step")
            steps, values = history["step"].tolist(), history["value"].tolist()
            rows += [{"run": r.run, "seed": str(seed), "step": s, "value": v}
                     for s, v in zip(steps, values, strict=True)]
            # Over the last two doublings: the curves scatter by 30-100 % of their level from one
            # validation to the next (the GAN's own oscillation; a validation's sampling SD is
            # 1-2 %), and over one doubling no interval of the slope was narrower than 9x the
            # bound (docs/captions.md section 9). On a curve that flattens with log(steps), the
            # gain over two doublings is at least the last doubling's: "levelled off" stays sound.
            verdicts[name] = plateau(steps, values, window=2)
            per_seed[seed] = dict(zip(steps, values, strict=True))
        if unvalidated:  # trained, not validated: cannot be seen to level off
            row_verdicts[r.run] = {"plateau": None, "seeds": len(per_seed),
                                   "reason": f"no validation curve (seed {unvalidated[0]})"}
        elif per_seed:
            row_verdicts[r.run] = {**row_plateau(per_seed), "seeds": len(per_seed)}
    return pd.DataFrame(rows, columns=["run", "seed", "step", "value"]), verdicts, row_verdicts


def row_plateau(per_seed: dict) -> dict:
    """The plateau verdict of a row: of the mean over seeds of val FID at each step that every
    seed validated (their runs share a budget, so they validate at the same steps)."""
    from reports.stats import plateau

    common = sorted(set.intersection(*(set(c) for c in per_seed.values())))
    common = [s for s in common if all(c[s] == c[s] for c in per_seed.values())]
    if not common:
        return {"plateau": None, "validations": 0, "reason": "its seeds share no validation step"}
    mean = [sum(c[s] for c in per_seed.values()) / len(per_seed) for s in common]
    return plateau(common, mean, window=2)


def _human_comparisons(runs_root: Path, study_id: str | None) -> dict | None:
    """The pairwise rank tests of the latest `human score` of this scale's study."""
    path = runs_root / "human-study" / "scores" / "score.json"
    if study_id is None or not path.exists():
        return None
    scored = json.loads(path.read_text())
    return scored.get("comparisons") if scored.get("study_id") == study_id else None


def _not_judged(row_plateaus: dict[str, dict]) -> dict[str, str]:
    """Rows whose mean validation curve has not levelled off (or cannot be seen to have: an
    undecided one, or no validation curve): their pairs are not judged. A row with no run is
    left to the claims' own rules ('not tested')."""
    out = {}
    for run, p in row_plateaus.items():
        if p["plateau"] is not True:
            why = "still improving" if p["plateau"] is False else p.get("reason", "undecided")
            out[run] = f"not levelled off: {why}"
    return out


def _follows_captions(exp, frame, seeds) -> str:
    """Per row: attribute accuracy against its own captions and against shuffled captions (the
    same images; the level of a model that ignores its text), the gain with its 95 % CI, and
    R-precision beside its chance of 1/100. One seed: the CI is the evaluation's paired
    bootstrap over images (R-precision: over its folds); several: a t interval over seeds."""
    import math

    from scipy import stats as sps

    from reports.tables import row_seeds

    def column(names: list[str], metric: str) -> list[float]:
        col = f"metrics.eval.{metric}"
        rows = frame[frame["name"].isin(names)] if not frame.empty else frame
        return [] if rows.empty or col not in rows else [v for v in rows[col].tolist() if v == v]

    def t_interval(values: list[float]) -> tuple[float, float]:
        m, sd = sum(values) / len(values), float(np.std(values, ddof=1))
        half = float(sps.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
        return m - half, m + half

    lines = ["| run | seeds | attr (own captions) | attr (shuffled captions) | gain [95 % CI] | "
             "follows its captions? | R-precision [95 % CI] (chance 0.01) |", "|---|---|---|---|---|---|---|"]
    for r in exp.rows:
        names = [f"{r.run}-s{s}" for s in row_seeds(frame, r.run, seeds)]
        own, shuffled, gain = (column(names, m) for m in ("attr_mean", "attr_shuffled", "attr_gain"))
        if not gain:
            continue
        if len(gain) == 1:
            lo, hi = column(names, "attr_gain_lo")[0], column(names, "attr_gain_hi")[0]
        else:
            lo, hi = t_interval(gain)
        rprec, folds = column(names, "rprec_mean"), column(names, "rprec_std")
        if len(rprec) >= 2:
            rlo, rhi = t_interval(rprec)
        elif rprec and folds:  # 10 folds of the one run
            half = float(sps.t.ppf(0.975, 9)) * folds[0] / math.sqrt(10)
            rlo, rhi = rprec[0] - half, rprec[0] + half
        else:
            rlo = rhi = float("nan")
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        word = "yes" if lo > 0 else ("no (below)" if hi < 0 else "not shown")
        rtext = "–" if not rprec else f"{mean(rprec):.3f} [{rlo:.3f}, {rhi:.3f}]"
        lines.append(f"| {markdown_cell(r.run)} | {len(gain)} | {mean(own):.3f} | {mean(shuffled):.3f} | "
                     f"{mean(gain):+.3f} [{lo:+.3f}, {hi:+.3f}] | {word} | {rtext} |")
    if len(lines) == 2:
        return "No run has an attribute accuracy (the dataset has no attribute labels).\n"
    return "\n".join(lines) + "\n"


def _variance_split(exp, seed_values: dict) -> str:
    """Per row: the SD of IS across seeds beside the typical SD within one run (over splits):
    which of the two limits a comparison."""
    lines = ["| run | seeds | SD across seeds | SD within a run (splits, mean over seeds) |",
             "|---|---|---|---|"]
    for r in exp.rows:
        across = seed_summary(list(seed_values.get(r.run, {}).get("IS", {}).values()))
        within = [v for v in seed_values.get(r.run, {}).get("IS within", {}).values() if v == v]
        if across["n_seeds"] == 0:
            continue
        mean_within = (sum(w * w for w in within) / len(within)) ** 0.5 if within else float("nan")
        cells = ["–" if v != v else f"{v:.3f}" for v in (across["std"], mean_within)]
        lines.append(f"| {markdown_cell(r.run)} | {across['n_seeds']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def _plateau_text(p: dict) -> str:
    if p["plateau"] is None and "ci" not in p:  # too few validations: nothing was fitted
        return f"not judged ({p['reason']})"
    lo, hi = p["ci"]
    first, last, n = p["window"]
    gain = (f"gain per doubling {p['gain_per_doubling']:.3g} [{lo:.3g}, {hi:.3g}] vs bound "
            f"{p['bound']:.3g}, fit over steps {first:g}-{last:g}, {n} validations")
    if p.get("autocorrelation", 0) > 0:
        gain += f" ({p['effective_points']:.1f} effective: lag-1 autocorrelation {p['autocorrelation']:.2f})"
    word = {True: "yes", False: "NO, still improving", None: "not judged, undecided"}[p["plateau"]]
    if p["plateau"] and hi < -p["bound"]:  # not improving: getting worse by more than the bound
        word = "yes, and worsening"
    return f"{word} ({gain}; val FID {p['first']:.3g} -> best {p['best']:.3g})"


def _claims_html(claims: list[dict]) -> str:
    keys = ("seeds", "means", "difference", "effect", "delta", "p", "power")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in CLAIM_COLUMNS)
    rows = ""
    for c in claims:
        for pair in c["pairs"]:
            cells = pair_cells(pair)
            rows += (f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(cells['pair'])}</td>"
                     + "".join(f"<td>{html.escape(cells[k])}</td>" for k in keys)
                     + f"<td><b>{html.escape(cells['verdict'])}</b></td></tr>")
    return f"<table><tr>{head}</tr>{rows}</table>"
