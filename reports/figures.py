"""The report's figures (matplotlib/seaborn, written as PNG): training curves, metric bars with
their spread, a grid of samples per caption across models (as the paper's Figure 3), one caption
under several noise vectors, and Stage-I beside Stage-II for the same samples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.data.dataset import load_image  # noqa: E402
from harness.data.samples_manifest import MANIFEST, read_manifest  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(curves: pd.DataFrame, path: Path) -> Path | None:
    if curves.empty:
        return None
    grid = sns.relplot(data=curves, x="step", y="value", hue="run", col="metric", kind="line",
                       facet_kws={"sharey": False}, height=3.2, aspect=1.4)
    grid.set_titles("{col_name}")
    return _save(grid.figure, path)


def metric_bars(labels: list[str], means: list[float], stds: list[float], metric: str, path: Path,
                ceiling: float | None = None, paper: list[float] | None = None) -> Path | None:
    """Horizontal bars (run names on the y axis stay legible however long), the error bar the
    std across seeds or the within-run spread."""
    if not any(m == m for m in means):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.42 * len(labels)))
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, [m if m == m else 0 for m in means], xerr=[s if s == s else 0 for s in stds],
            capsize=3, color=sns.color_palette()[0], label="ours")
    if paper:
        ax.scatter(paper, ys, color="black", marker="|", s=300, zorder=3, label="paper")
    if ceiling is not None and ceiling == ceiling:
        ax.axvline(ceiling, ls="--", color="gray", label="real images")
    ax.set_yticks(ys, [textwrap.fill(lbl, 38) for lbl in labels], fontsize=7)
    ax.set_xlabel(metric)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def validation_curves(curves: pd.DataFrame, path: Path) -> Path | None:
    """val.fid over training steps, one panel per run, one line per seed."""
    if curves.empty:
        return None
    grid = sns.relplot(data=curves, x="step", y="value", hue="seed", col="run", col_wrap=4,
                       kind="line", marker="o", facet_kws={"sharey": False, "sharex": False},
                       height=2.4, aspect=1.3)
    grid.set_titles("{col_name}", size=8)
    grid.set_axis_labels("step", "val FID")
    return _save(grid.figure, path)


def validity_plot(report: dict, path: Path) -> Path | None:
    """Each metric on the real images and their degradations, with 95 % bootstrap CIs.

    The intervals are drawn as they are, not as error bars around the value: a percentile
    interval of a set statistic (IS, FD) on resampled images — duplicates lower IS and raise FD —
    can lie wholly on one side of the value computed on the images themselves."""
    results = report["results"]
    kinds = list(results)
    metrics = list(results[kinds[0]])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.1 * len(metrics), 3.2))
    for ax, metric in zip(list(axes) if len(metrics) > 1 else [axes], metrics, strict=True):
        xs = range(len(kinds))
        ax.vlines(xs, [results[k][metric]["ci"][0] for k in kinds],
                  [results[k][metric]["ci"][1] for k in kinds], color="C0", lw=2, alpha=0.5)
        ax.plot(xs, [results[k][metric]["value"] for k in kinds], "o", color="C0")
        ax.set_xticks(range(len(kinds)), kinds, rotation=60, fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _manifest(folder: Path) -> list[dict]:
    if not (folder / MANIFEST).exists():
        return []
    return read_manifest(folder)


def samples_grid(sample_dirs: dict[str, Path], path: Path, captions: int = 4) -> Path | None:
    """Rows: models; columns: the same test captions (the first ones every model sampled)."""
    manifests = {m: _manifest(d) for m, d in sample_dirs.items()}
    manifests = {m: recs for m, recs in manifests.items() if recs}
    if not manifests:
        return None
    common = None
    for recs in manifests.values():
        ids = [r["caption_id"] for r in recs if r.get("sample_index", 0) == 0]
        common = ids if common is None else [c for c in common if c in set(ids)]
    chosen = (common or [])[:captions]
    if not chosen:
        return None
    fig, axes = plt.subplots(len(manifests), len(chosen), figsize=(2.2 * len(chosen), 2.3 * len(manifests)),
                             squeeze=False)
    texts = {}
    for r, (model, recs) in enumerate(manifests.items()):
        by_id = {rec["caption_id"]: rec for rec in recs if rec.get("sample_index", 0) == 0}
        for c, cid in enumerate(chosen):
            ax = axes[r][c]
            ax.imshow(load_image(sample_dirs[model] / by_id[cid]["file"]))
            ax.set_xticks([])
            ax.set_yticks([])
            texts[cid] = by_id[cid]["caption"]
            if c == 0:
                ax.set_ylabel(textwrap.fill(model, 16), fontsize=8)
            if r == 0:
                ax.set_title(textwrap.fill(texts[cid], 30), fontsize=7)
    return _save(fig, path)


def noise_grid(folder: Path, path: Path, title: str) -> Path | None:
    """One caption under several noise vectors (rows: captions, columns: noise seeds)."""
    recs = _manifest(folder)
    if not recs:
        return None
    by_caption: dict[str, list[dict]] = {}
    for rec in recs:
        by_caption.setdefault(rec["caption_id"], []).append(rec)
    rows = list(by_caption.values())
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.9 * len(rows)), squeeze=False)
    for r, recs_r in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(recs_r):
                ax.imshow(load_image(folder / recs_r[c]["file"]))
        axes[r][0].set_ylabel(textwrap.fill(recs_r[0]["caption"], 22), fontsize=6)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def stage_pairs(folder: Path, path: Path, count: int = 6) -> Path | None:
    """Stage-I (top) and Stage-II (bottom) of the same samples."""
    recs = [r for r in _manifest(folder) if r.get("stage1_file")][:count]
    if not recs:
        return None
    fig, axes = plt.subplots(2, len(recs), figsize=(1.9 * len(recs), 4), squeeze=False)
    for c, rec in enumerate(recs):
        for r, key in enumerate(("stage1_file", "file")):
            ax = axes[r][c]
            ax.imshow(load_image(folder / rec[key]))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][c].set_title(textwrap.fill(rec["caption"], 24), fontsize=6)
    axes[0][0].set_ylabel("Stage-I", fontsize=8)
    axes[1][0].set_ylabel("Stage-II", fontsize=8)
    return _save(fig, path)
