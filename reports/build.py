"""``stackgan-bench report``: MLflow runs -> ``reports/<experiment>/`` (Table in Markdown, CSV
and LaTeX beside the paper's numbers, the paper's claims checked, figures, ``index.html``), all
logged to MLflow as well."""

from __future__ import annotations

import html
import json
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.cells import markdown_cell
from harness.eval.protocols import resolve as resolve_protocol
from harness.experiments.plan import plan_runs
from harness.experiments.spec import load_experiment, load_scales
from harness.tracking.mlflow_tracker import Tracker, default_uri
from reports import figures
from reports.collect import curves, human_scores, runs_frame
from reports.stats import TEST_NAME, seed_summary
from reports.tables import METRICS, build_table, check_claims, claims_markdown, to_csv, to_latex, to_markdown


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
    frame = runs_frame(uri, tracking_experiment)
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
        claims = check_claims(exp, seed_values)
        ev = scale.pipeline.get("eval") or {}
        protocol = resolve_protocol(ev.get("protocol"), ev.get("captions_per_image"), ev.get("per_caption"))
        notes = [f"Scale {preset}: {scale.description}; seeds {list(scale.seeds)}.",
                 f"Evaluation protocol {protocol.name}: the first {protocol.captions_per_image} "
                 f"caption(s) of each test image, {protocol.per_caption} image(s) each.",
                 "Cells: mean ± std [95 % CI of the mean] across seeds when there are several; with "
                 "one seed, mean ± the spread within the run (IS over splits, R-precision over "
                 "folds) and no CI.",
                 "Claims: each pair tested by " + TEST_NAME + "; one seed is 'not tested'.",
                 "† the paper's value is remembered, not confirmed in a stored source (REFERENCE §1).",
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
              "## The paper's claims in our numbers", "", claims_markdown(claims)]
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
        val_curves, plateaus = _validation(uri, frame, exp, scale.seeds)
        if not val_curves.empty:
            images.append(figures.validation_curves(val_curves, out / "validation_fid.png"))
            rows = [f"| {name} | {_plateau_text(p)} |" for name, p in plateaus.items()]
            extra_md += ["## Training: has each run levelled off?", "",
                         "val FID of fixed captions and noise every few hundred steps "
                         "(validation_fid.png); a plateau: the last 3 validations gained less than "
                         "10 % of the run's total improvement.", "",
                         "| run | plateau |", "|---|---|", *rows, ""]
            extra_html += ("<h2>Training plateaus</h2><table><tr><th>run</th><th>plateau</th></tr>"
                           + "".join(f"<tr><td>{html.escape(n)}</td><td>{html.escape(_plateau_text(p))}"
                                     "</td></tr>" for n, p in plateaus.items()) + "</table>")
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
    """val.fid curves of every row's runs (all seeds) and each run's plateau verdict."""
    import pandas as pd

    from reports.stats import plateau

    rows, verdicts = [], {}
    for r in exp.rows:
        for seed in seeds:
            name = f"{r.run}-s{seed}"
            match = frame[frame["name"] == name] if not frame.empty else frame
            if match.empty:
                continue
            history = curves(uri, {name: match["run_id"].iloc[0]}, keys=("val.fid",))
            if history.empty:
                continue
            history = history.sort_values("step")
            rows += [{"run": r.run, "seed": str(seed), "step": s, "value": v}
                     for s, v in zip(history["step"], history["value"], strict=True)]
            verdicts[name] = plateau(history["value"].tolist())
    return pd.DataFrame(rows, columns=["run", "seed", "step", "value"]), verdicts


def _plateau_text(p: dict) -> str:
    if p["plateau"] is None:
        return f"not judged ({p['reason']})"
    share = f"last validations gained {p['last_gain_share']:.0%} of the improvement"
    return f"{'yes' if p['plateau'] else 'NO'} ({share}; val FID {p['first']:.3g} -> best {p['best']:.3g})"


def _claims_html(claims: list[dict]) -> str:
    def p(value: float) -> str:
        return "–" if value != value else f"{value:.3g}"

    rows = "".join(
        f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(pair['better'])} &gt; "
        f"{html.escape(pair['worse'])}</td><td>{pair['mean_better']:.3g} vs {pair['mean_worse']:.3g}</td>"
        f"<td>{p(pair['p'])}</td><td>{p(pair['p_holm'])}</td><td><b>{html.escape(pair['verdict'])}</b></td></tr>"
        for c in claims for pair in c["pairs"])
    return ("<table><tr><th>claim</th><th>pair</th><th>means</th><th>p</th><th>p (Holm)</th>"
            f"<th>verdict</th></tr>{rows}</table>")
