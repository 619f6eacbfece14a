"""IS / FID / KID through torch-fidelity, with the settings that produced each value.

The real set's features are cached by torch-fidelity under a name that hashes every option that
changes them (dataset fingerprint, split, extractor, weights hash, resize, box crop, count, seed),
so a changed dataset or setting never reuses a stale entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from harness.errors import UserError

METRICS = ("is", "is_star", "fid", "kid")
DEFAULT_KID_SUBSET = 1000  # torch-fidelity's default
FEATURE_DIMS = {"inception-v3-compat": 2048}


@dataclass
class EvalSettings:
    extractor: str = "dataset-classifier"
    weights_path: str | None = None
    weights_sha256: str | None = None
    standard_weights: bool = True
    isc_splits: int = 10
    kid_subset_size: int = DEFAULT_KID_SUBSET
    kid_subsets: int = 100
    seed: int = 0
    batch_size: int = 64
    cache_root: str | None = None
    extra: dict = field(default_factory=dict)


def real_cache_name(settings: EvalSettings, real_description: dict) -> str:
    payload = {"extractor": settings.extractor, "weights": settings.weights_sha256,
               "seed": settings.seed, **real_description}
    return "real-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def default_cache_root() -> str:
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stackgan-bench"
               / "fidelity")


def evaluate_sets(fake: Dataset, real: Dataset | None, metrics: tuple[str, ...],
                  settings: EvalSettings, real_description: dict | None = None) -> dict:
    """Metric values, the settings behind them, and warnings for small samples."""
    import torch_fidelity

    from harness.eval import classifier, inception_fast

    classifier.register()
    inception_fast.register()
    # The standard extractor, run with channels_last weights (same values, faster).
    engine_extractor = inception_fast.NAME if settings.extractor == "inception-v3-compat" \
        else settings.extractor
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {unknown}; known here: {', '.join(METRICS)}")
    needs_real = any(m in ("fid", "kid") for m in metrics)
    if needs_real and real is None:
        raise UserError("FID and KID need a real image set (--real DIR or --data DATASET)")
    n_fake, n_real = len(fake), (len(real) if real is not None else None)
    warnings: list[str] = []
    kid_subset = settings.kid_subset_size
    if "kid" in metrics and kid_subset > min(n_fake, n_real):
        kid_subset = min(n_fake, n_real)
        warnings.append(f"KID subset size lowered from {settings.kid_subset_size} to {kid_subset} "
                        f"(the smaller set has {kid_subset} images)")
    cache_name = None
    if real is not None and real_description is not None:
        cache_name = real_cache_name(settings, real_description)
    kwargs = dict(
        input1=fake, input2=real if needs_real else None, cuda=torch.cuda.is_available(),
        isc="is" in metrics or not any(m in ("fid", "kid") for m in metrics),
        fid="fid" in metrics, kid="kid" in metrics,
        feature_extractor=engine_extractor, feature_extractor_weights_path=settings.weights_path,
        isc_splits=settings.isc_splits, kid_subset_size=kid_subset, kid_subsets=settings.kid_subsets,
        rng_seed=settings.seed, batch_size=settings.batch_size, datasets_download=False,
        verbose=False, save_cpu_ram=True, cache=cache_name is not None,
        cache_root=settings.cache_root or default_cache_root(), input2_cache_name=cache_name)
    values = torch_fidelity.calculate_metrics(**kwargs)
    out = {}
    if "is" in metrics:
        out["is_mean"] = values["inception_score_mean"]
        out["is_std"] = values["inception_score_std"]
    if "fid" in metrics:
        out["fid"] = values["frechet_inception_distance"]
        dim = _feature_dim(settings)
        if dim is not None and min(n_fake, n_real) < dim:
            warnings.append(f"FID from {min(n_fake, n_real)} images with {dim}-dimensional features "
                            "is unreliable (rank-deficient covariance; FID is biased by n): compare "
                            "only at matched n, or use KID")
    if "kid" in metrics:
        out["kid_mean"] = values["kernel_inception_distance_mean"]
        out["kid_std"] = values["kernel_inception_distance_std"]
    if "is_star" in metrics:
        if settings.extractor != "dataset-classifier":
            raise UserError("IS* needs the dataset-classifier extractor (its temperature is fitted "
                            "on held-out real images)")
        calibrated = torch_fidelity.calculate_metrics(**{
            **kwargs, "input2": None, "fid": False, "kid": False, "isc": True,
            "feature_layer_isc": "logits_calibrated", "cache": False})
        out["is_star_mean"] = calibrated["inception_score_mean"]
        out["is_star_std"] = calibrated["inception_score_std"]
    return {"values": out, "warnings": warnings,
            "settings": {"extractor": settings.extractor, "implementation": engine_extractor,
                         "weights_path": settings.weights_path,
                         "weights_sha256": settings.weights_sha256,
                         "standard_weights": settings.standard_weights, "n_fake": n_fake,
                         "n_real": n_real, "isc_splits": settings.isc_splits,
                         "kid_subset_size": kid_subset, "kid_subsets": settings.kid_subsets,
                         "seed": settings.seed, "real_cache_name": cache_name,
                         **settings.extra}}


def _feature_dim(settings: EvalSettings) -> int | None:
    if settings.extractor == "dataset-classifier":
        from harness.eval.classifier import load_classifier, pool_dim

        return pool_dim(load_classifier(settings.weights_path)[0])
    return FEATURE_DIMS.get(settings.extractor)
