"""Is the ruler sensitive where the models score? Every metric on real test images the dataset
classifier never trained on, on controlled degradations of them, and on graded ladders of
degradation down to where the models score, each value with a 95 % interval and each ordering
decided by the interval of the paired difference.

Images: the classifier's held-out share of the test split (it never trained on them), split by
position: the first half is evaluated ("real", then degraded), the second half is the FID/KID
reference. Degradations:
- ``down2`` / ``down4``: down- and up-sampled by 2× / 4× (PIL bicubic): the detail a higher
  resolution adds, which Stage-II exists to add;
- ``blur`` (Gaussian, σ = 1.5 px at 128, scaled with the size), ``jpeg`` (quality 15),
  ``colour`` (hue rotated by a quarter turn): damage of other kinds;
- ``shuffled``: the images unchanged, each paired with another image's caption (a derangement)
  for R-precision and attribute accuracy, which should fall to chance;
- ``noise``: uniform random pixels.
Ladders (``LADDERS``), each from the real images down to near noise, so that the ruler is checked
in the range where the models score (IS of a few, not the real images' tens): down-up sampling by
2, 4, 8, 16; Gaussian blur σ 1, 2, 4, 8 px at 128; Gaussian pixel noise σ 16, 32, 64, 128 levels;
mixing with uniform noise at 25, 50, 75, 100 %. A ladder is monotone when every step makes every
metric worse with the 95 % interval of the paired difference on the wrong side of 0.
IS is computed over the evaluated set (one split), FID and KID against the reference half, with
the dataset classifier's logits and ``mid`` features (as the evaluation proper: a Fréchet/kernel
distance in that feature space, not Inception's); R-precision and attribute accuracy per image
(R-precision on its first caption; attribute accuracy over the attributes all its captions name).
Every interval is a percentile bootstrap over the evaluated images (``bootstrap`` resamples, the
same resamples for every condition, so that differences are paired).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.errors import UserError
from harness.eval.attributes import derangement

DEGRADATIONS = ("real", "down2", "down4", "blur", "jpeg", "colour", "shuffled", "noise")
# Graded ladders: (name, levels); each condition is named f"{name}{level}".
LADDERS = {"down": (2, 4, 8, 16), "blur": (1, 2, 4, 8), "gauss": (16, 32, 64, 128),
           "mix": (25, 50, 75, 100)}
METRIC_NAMES = {"is": "IS", "fid": "FD (classifier)", "kid": "KD (classifier)",
                "rprec": "R-precision", "attr": "attribute acc."}
LOWER_IS_BETTER = {"fid", "kid"}


def ladder_conditions() -> list[str]:
    return [f"{name}{level}" for name, levels in LADDERS.items() for level in levels]


@dataclass(frozen=True)
class ValidityRequest:
    data: str
    size: int
    classifier: str
    rprec_encoder: str | None = None
    attr_classifier: str | None = None
    metrics: tuple[str, ...] = ("is", "fid", "kid", "rprec", "attr")
    bootstrap: int = 2000
    kid_subset_size: int = 500
    seed: int = 0
    split: str = "test"


def _pil(arr: torch.Tensor) -> Image.Image:
    return Image.fromarray(arr.permute(1, 2, 0).numpy())


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def degrade(images: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """uint8 N×3×S×S images under one degradation (``real`` and ``shuffled`` leave them)."""
    import torchvision.transforms.functional as TF

    n, _, size, _ = images.shape
    if kind in ("real", "shuffled"):
        return images
    if kind in ("down2", "down4"):
        small = size // int(kind[-1])
        return torch.stack([_tensor(_pil(x).resize((small, small), Image.BICUBIC)
                                    .resize((size, size), Image.BICUBIC)) for x in images])
    if kind == "blur":
        sigma = 1.5 * size / 128
        k = 2 * int(3 * sigma) + 1
        return TF.gaussian_blur(images, [k, k], [sigma, sigma])
    if kind == "jpeg":
        out = []
        for x in images:
            buf = io.BytesIO()
            _pil(x).save(buf, format="JPEG", quality=15)
            out.append(_tensor(Image.open(io.BytesIO(buf.getvalue()))))
        return torch.stack(out)
    if kind == "colour":
        return TF.adjust_hue(images, 0.25)
    if kind == "noise":
        return torch.randint(0, 256, images.shape, dtype=torch.uint8,
                             generator=torch.Generator().manual_seed(seed + 0x5EED))
    for name in LADDERS:
        if kind.startswith(name) and kind[len(name):].isdigit():
            return _ladder(images, name, int(kind[len(name):]), seed)
    raise ValueError(f"unknown degradation {kind!r}")


def _ladder(images: torch.Tensor, name: str, level: int, seed: int) -> torch.Tensor:
    import torchvision.transforms.functional as TF

    size = images.shape[-1]
    gen = torch.Generator().manual_seed(seed + 0x1ADD + level)
    if name == "down":
        small = max(1, size // level)
        return torch.stack([_tensor(_pil(x).resize((small, small), Image.BICUBIC)
                                    .resize((size, size), Image.BICUBIC)) for x in images])
    if name == "blur":
        sigma = level * size / 128
        k = min(2 * int(3 * sigma) + 1, 2 * (size // 2) - 1)
        return TF.gaussian_blur(images, [k, k], [sigma, sigma])
    x = images.float()
    if name == "gauss":
        x = x + level * torch.randn(x.shape, generator=gen)
    else:  # mix: a share of uniform noise
        noise = torch.randint(0, 256, x.shape, generator=gen).float()
        x = (1 - level / 100) * x + (level / 100) * noise
    return x.round().clamp(0, 255).to(torch.uint8)


def _inception_score(logits: torch.Tensor) -> float:
    from torch_fidelity.metric_isc import isc_features_to_metric

    return isc_features_to_metric(logits, splits=1, shuffle=False)["inception_score_mean"]


def _fid(pool: np.ndarray, ref_stats: dict) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = fid_features_to_statistics(torch.from_numpy(pool))
    return fid_statistics_to_metric(ref_stats, stats, False)["frechet_inception_distance"]


def _kid(pool: np.ndarray, ref_pool: np.ndarray, subset: int, seed: int) -> float:
    from torch_fidelity.metric_kid import kid_features_to_metric

    subset = min(subset, len(pool), len(ref_pool))
    return kid_features_to_metric(torch.from_numpy(pool), torch.from_numpy(ref_pool), kid_subsets=10,
                                  kid_subset_size=subset, verbose=False, rng_seed=seed,
                                  kid_degree=3, kid_gamma=None, kid_coef0=1)["kernel_inception_distance_mean"]


@torch.no_grad()
def _classifier_features(images: torch.Tensor, classifier: str) -> tuple[torch.Tensor, np.ndarray]:
    from harness.eval.classifier import ClassifierOptions, load_classifier, prepare

    model, ckpt = load_classifier(classifier)
    size = ClassifierOptions(**ckpt["options"]).image_size
    pools, logits = [], []
    for i in range(0, len(images), 128):
        out = model.forward_all(prepare(images[i:i + 128], size))
        pools.append(out["mid"])  # what FID and KID read (see SmallClassifier.forward_all)
        logits.append(out["logits"])
    return torch.cat(logits).double(), torch.cat(pools).double().numpy()


def validate_metrics(req: ValidityRequest, progress: bool = True) -> dict:
    from harness.data.real_images import load_real_tensor
    from harness.data.sources import load_index
    from harness.eval.classifier import held_out_indices

    unknown = sorted(set(req.metrics) - set(METRIC_NAMES))
    if unknown:
        raise UserError(f"--metrics: unknown {unknown}; known: {', '.join(METRIC_NAMES)}")
    for metric, path, flag in (("rprec", req.rprec_encoder, "--rprec-encoder"),
                               ("attr", req.attr_classifier, "--attr-classifier")):
        if metric in req.metrics and not path:
            raise UserError(f"--validate with {metric} needs {flag}")
    index = load_index(req.data, req.split)
    images = load_real_tensor(req.data, req.split, req.size, progress)
    held = np.asarray(held_out_indices(req.classifier, req.data, req.split))
    evaluated, reference = held[0::2], held[1::2]
    if len(reference) < 2:
        raise UserError(f"{req.data}: too few held-out {req.split} images to validate the metrics")
    _, ref_pool = _classifier_features(images[reference], req.classifier)
    from torch_fidelity.metric_fid import fid_features_to_statistics

    ref_stats = fid_features_to_statistics(torch.from_numpy(ref_pool))
    keys = [index.keys[i] for i in evaluated]
    captions = [index.captions(i)[0] for i in evaluated]
    classes = [int(index.class_ids[i]) for i in evaluated]
    pool_captions, pool_classes = [], []
    for i in range(len(index)):
        pool_captions += index.captions(i)
        pool_classes += [int(index.class_ids[i])] * len(index.captions(i))
    shuffle = derangement(len(evaluated), req.seed)
    rng = np.random.default_rng([req.seed, 7])
    resamples = [rng.integers(0, len(evaluated), len(evaluated)) for _ in range(req.bootstrap)]

    results: dict[str, dict] = {}
    draws: dict[str, dict[str, np.ndarray]] = {}  # condition -> metric -> bootstrap values
    for kind in (*DEGRADATIONS, *ladder_conditions()):
        x = degrade(images[evaluated], kind, req.seed)
        order = shuffle if kind == "shuffled" else np.arange(len(evaluated))
        logits, pool = _classifier_features(x, req.classifier)
        per_image: dict[str, np.ndarray] = {}
        if "rprec" in req.metrics:
            from harness.eval.rprecision import r_precision

            out = r_precision(x, [captions[j] for j in order], [classes[j] for j in order],
                              pool_captions, pool_classes, req.rprec_encoder, seed=req.seed, return_hits=True)
            per_image["rprec"] = out["hits"].astype(float)
        if "attr" in req.metrics:
            from harness.eval.attributes import attribute_accuracy, named_attributes, read_attributes

            table = read_attributes(req.data)
            # Every attribute any of the image's captions names, not only the first caption's
            # two or three: which attributes one caption happens to name is noise that widened
            # the interval (measured at 128 px: real 0.964 [0.956, 0.971] vs down2 0.953
            # [0.945, 0.961] with the first caption; [0.958, 0.967] vs [0.944, 0.956] with all).
            named = [sum(named_attributes(table, [f"{keys[j]}#{c}" for c in
                                                  range(len(table.caption_ids[keys[j]]))]), [])
                     for j in order]
            out = attribute_accuracy(x, named, table, req.attr_classifier, return_scores=True)
            per_image["attr"] = np.asarray(out["scores"])

        def value(metric: str, idx: np.ndarray, logits=logits, pool=pool, per_image=per_image) -> float:
            if metric == "is":
                return _inception_score(logits[idx])
            if metric == "fid":
                return _fid(pool[idx], ref_stats)
            if metric == "kid":
                return _kid(pool[idx], ref_pool, req.kid_subset_size, req.seed)
            return float(np.nanmean(per_image[metric][idx]))

        everything = np.arange(len(evaluated))
        results[kind], draws[kind] = {}, {}
        for metric in req.metrics:
            boot = np.array([value(metric, idx) for idx in resamples])
            lo, hi = np.percentile(boot, [2.5, 97.5])
            results[kind][metric] = {"value": value(metric, everything), "ci": [float(lo), float(hi)]}
            draws[kind][metric] = boot
    differences = {f"{a} > {b}": paired_difference(draws[a], draws[b], results[a], results[b])
                   for a, b in compared_pairs()}
    chance = {"rprec": 1 / 100}
    return {"settings": {**asdict(req), "evaluated_images": int(len(evaluated)),
                         "reference_images": int(len(reference)), "chance": chance,
                         "images": "the dataset classifier's held-out test images (never trained on): "
                                   "first half evaluated, second half the FD/KD reference",
                         "ci": f"95 % percentile bootstrap over the evaluated images ({req.bootstrap} "
                               "resamples, shared by every condition: differences are paired)"},
            "results": results, "differences": differences,
            "checks": checks(results, differences)}


def compared_pairs() -> list[tuple[str, str]]:
    """(better, worse) condition pairs whose paired difference is reported: real > ↓2↑ > ↓4↑,
    and every step of every ladder (from the real images)."""
    pairs = [("real", "down2"), ("down2", "down4")]
    for name, levels in LADDERS.items():
        steps = ["real", *(f"{name}{level}" for level in levels)]
        pairs += list(zip(steps, steps[1:], strict=False))
    return pairs


def paired_difference(better: dict, worse: dict, better_value: dict, worse_value: dict) -> dict:
    """Per metric: the difference in the better direction (positive: ``better`` scores better)
    with the percentile interval of its paired bootstrap draws."""
    out = {}
    for metric in better:
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        draws = sign * (better[metric] - worse[metric])
        finite = draws[np.isfinite(draws)]
        lo, hi = (np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan))
        out[metric] = {"value": sign * (better_value[metric]["value"] - worse_value[metric]["value"]),
                       "ci": [float(lo), float(hi)]}
    return out


def checks(results: dict, differences: dict) -> dict:
    """The orderings a sensitive ruler must show, each from the interval of the paired
    difference lying above 0: real better than ↓2↑ better than ↓4↑ (required of IS, FD and
    attribute accuracy; reported for KD and R-precision, which judge other things); every ladder
    monotone, step by step; the ladders reaching the models' range (IS below 2); shuffled
    captions at chance R-precision within the CI; the real images' R-precision above chance."""
    out = {}

    def resolved(pair: str, metric: str) -> bool:
        return differences[pair][metric]["ci"][0] > 0

    for metric in ("is", "fid", "kid", "attr", "rprec"):
        if metric not in results["real"]:
            continue
        out[f"{metric}: real > down2 > down4"] = resolved("real > down2", metric) and resolved(
            "down2 > down4", metric)
        for name, levels in LADDERS.items():
            steps = ["real", *(f"{name}{level}" for level in levels)]
            if all(s in results for s in steps):
                out[f"{metric}: {name} ladder monotone, every step resolved"] = all(
                    resolved(f"{a} > {b}", metric) for a, b in zip(steps, steps[1:], strict=False))
    if "is" in results["real"]:
        lows = [results[f"{name}{levels[-1]}"]["is"]["value"] for name, levels in LADDERS.items()
                if f"{name}{levels[-1]}" in results]
        if lows:
            out["is: a ladder reaches the models' range (IS below 2)"] = min(lows) < 2
    if "rprec" in results["real"]:
        lo, hi = results["shuffled"]["rprec"]["ci"]
        out["rprec: shuffled captions at chance (1/100 within the CI)"] = lo <= 0.01 <= hi
        out["rprec: real above chance (CI above 1/100)"] = results["real"]["rprec"]["ci"][0] > 0.01
    return out


def format_table(report: dict) -> str:
    metrics = list(next(iter(report["results"].values())))
    lines = ["| condition | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for kind, row in report["results"].items():
        cells = []
        for m in metrics:
            v = row[m]
            cells.append(f"{v['value']:.4g} [{v['ci'][0]:.4g}, {v['ci'][1]:.4g}]")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if report.get("differences"):
        lines += ["", "Paired differences (better − worse, in the better direction; 95 % interval):", "",
                  "| step | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        for pair, row in report["differences"].items():
            cells = [f"{row[m]['value']:.3g} [{row[m]['ci'][0]:.3g}, {row[m]['ci'][1]:.3g}]"
                     for m in metrics]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {name}: {'yes' if ok else 'NO'}" for name, ok in report["checks"].items()]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str | Path) -> None:
    from harness.atomic import write_text_atomic

    out = Path(out)
    write_text_atomic(out / "validity.json", json.dumps(report, indent=2))
    write_text_atomic(out / "validity.md", format_table(report))


def log_report(report: dict, out: str | Path, uri: str | None = None,
               experiment: str = "metric-validity") -> None:
    """Every value and its interval as MLflow metrics (``<degradation>.<metric>``,
    ``….lo``/``….hi``), the settings as tags, the files as artifacts."""
    from harness.tracking.mlflow_tracker import Tracker, default_uri

    out = Path(out)
    tracker = Tracker(uri or default_uri(out), experiment, out, f"validity-{report['settings']['size']}",
                      reopen=False)
    values = {}
    for kind, row in report["results"].items():
        for metric, v in row.items():
            values[f"{kind}.{metric}"] = v["value"]
            values[f"{kind}.{metric}.lo"], values[f"{kind}.{metric}.hi"] = v["ci"]
    tracker.log_metrics(values, 0)
    tracker.set_tags({f"validity.{k}": v for k, v in report["settings"].items()
                      if isinstance(v, str | int | float)})
    for name in ("validity.json", "validity.md"):
        if (out / name).exists():
            tracker.log_artifact(out / name)
    tracker.end()
