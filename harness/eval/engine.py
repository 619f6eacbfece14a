"""IS / FID / KID through torch-fidelity, with the settings that produced each value.

torch-fidelity extracts the features and computes the metrics (its own functions, on one pass
over each image set). The real set's features are cached here, not by torch-fidelity (which reads
its cache with ``torch.load(weights_only=False)``: a planted cache file could run code): as an
``.npz`` read with ``allow_pickle=False``, written atomically, under a name that hashes every
option that changes them (dataset fingerprint, split, extractor, weights hash, resize, box crop,
count, seed), with that name stored inside and checked on reading.
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
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    if "is_star" in metrics and settings.extractor != "dataset-classifier":
        raise UserError("IS* needs the dataset-classifier extractor (its temperature is fitted "
                        "on held-out real images)")
    cls = FEATURE_EXTRACTORS_REGISTRY[engine_extractor]
    layer = {m: cls.get_default_feature_layer_for_metric(m) for m in ("isc", "fid", "kid")}
    want_is = "is" in metrics or not any(m in ("fid", "kid") for m in metrics)
    fake_layers = sorted({*([layer["isc"]] if want_is else []),
                          *([layer["fid"]] if "fid" in metrics else []),
                          *([layer["kid"]] if "kid" in metrics else []),
                          *(["logits_calibrated"] if "is_star" in metrics else [])})
    real_layers = sorted({*([layer["fid"]] if "fid" in metrics else []),
                          *([layer["kid"]] if "kid" in metrics else [])})
    cuda = torch.cuda.is_available()
    fx = create_feature_extractor(engine_extractor, sorted({*fake_layers, *real_layers}), cuda=cuda,
                                  feature_extractor_weights_path=settings.weights_path, verbose=False)
    fake_feats = _features(fake, fx, settings.batch_size, cuda)
    real_feats = None
    if needs_real:
        cache = Path(settings.cache_root or default_cache_root())
        real_feats = _cached_features(cache, cache_name, real_layers) if cache_name else None
        if real_feats is None:
            real_feats = _features(real, fx, settings.batch_size, cuda)
            if cache_name:
                _write_features(cache, cache_name, real_feats, real_layers)
    common = {"rng_seed": settings.seed, "verbose": False}
    out = {}
    if "is" in metrics:
        isc = isc_featuresdict_to_metric(fake_feats, layer["isc"], isc_splits=settings.isc_splits, **common)
        out["is_mean"], out["is_std"] = isc["inception_score_mean"], isc["inception_score_std"]
    if "fid" in metrics:
        out["fid"] = fid_statistics_to_metric(fid_featuresdict_to_statistics(fake_feats, layer["fid"]),
                                              fid_featuresdict_to_statistics(real_feats, layer["fid"]),
                                              False)["frechet_inception_distance"]
        dim = _feature_dim(settings)
        if dim is not None and min(n_fake, n_real) < dim:
            warnings.append(f"FID from {min(n_fake, n_real)} images with {dim}-dimensional features "
                            "is unreliable (rank-deficient covariance; FID is biased by n): compare "
                            "only at matched n, or use KID")
    if "kid" in metrics:
        kid = kid_featuresdict_to_metric(fake_feats, real_feats, layer["kid"],
                                         kid_subsets=settings.kid_subsets, kid_subset_size=kid_subset,
                                         **common)
        out["kid_mean"] = kid["kernel_inception_distance_mean"]
        out["kid_std"] = kid["kernel_inception_distance_std"]
    if "is_star" in metrics:
        isc = isc_featuresdict_to_metric(fake_feats, "logits_calibrated", isc_splits=settings.isc_splits,
                                         **common)
        out["is_star_mean"], out["is_star_std"] = isc["inception_score_mean"], isc["inception_score_std"]
    return {"values": out, "warnings": warnings,
            "settings": {"extractor": settings.extractor, "implementation": engine_extractor,
                         "weights_path": settings.weights_path,
                         "weights_sha256": settings.weights_sha256,
                         "standard_weights": settings.standard_weights, "n_fake": n_fake,
                         "n_real": n_real, "isc_splits": settings.isc_splits,
                         "kid_subset_size": kid_subset, "kid_subsets": settings.kid_subsets,
                         "seed": settings.seed, "real_cache_name": cache_name,
                         **settings.extra}}


def _features(inputs: Dataset, fx, batch_size: int, cuda: bool) -> dict[str, torch.Tensor]:
    from torch_fidelity.utils import get_featuresdict_from_dataset

    return get_featuresdict_from_dataset(inputs, fx, batch_size, cuda, True, False)


def _cache_path(cache: Path, name: str) -> Path:
    return cache / f"{name}.npz"


def _cached_features(cache: Path, name: str, layers: list[str]) -> dict[str, torch.Tensor] | None:
    """The cached features, or None when absent, unreadable, or for another key."""
    import numpy as np

    path = _cache_path(cache, name)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != name or not set(layers) <= set(data.files):
                return None
            return {k: torch.from_numpy(np.array(data[k])) for k in layers}
    except (OSError, ValueError, KeyError):
        return None  # damaged: computed again and rewritten


def _write_features(cache: Path, name: str, feats: dict[str, torch.Tensor], layers: list[str]) -> None:
    import io

    import numpy as np

    from harness.atomic import write_bytes_atomic

    buf = io.BytesIO()
    np.savez(buf, key=np.array(name), **{k: feats[k].cpu().numpy() for k in layers})
    write_bytes_atomic(_cache_path(cache, name), buf.getvalue())


def _feature_dim(settings: EvalSettings) -> int | None:
    if settings.extractor == "dataset-classifier":
        from harness.eval.classifier import load_classifier, pool_dim

        return pool_dim(load_classifier(settings.weights_path)[0])
    return FEATURE_DIMS.get(settings.extractor)
