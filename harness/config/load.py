"""Loads a run config: typed defaults <- YAML preset (which may ``inherit`` another) <- overrides.

OmegaConf structured configs do the merging and type checking; this module turns their errors
into one message with the key's path and the nearest valid names.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from harness.config.schema import RESUME_SAFE_KEYS, RunConfig
from harness.config.yaml_plain import load_plain
from harness.errors import UserError

# The presets ship inside the package, so a wheel installed anywhere finds them.
CONFIG_DIR = Path(__file__).resolve().parent / "presets"


def _valid_paths(cls=RunConfig, prefix: str = "") -> list[str]:
    out = []
    for f in fields(cls):
        path = f"{prefix}{f.name}"
        default = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        if default is not None and is_dataclass(default):
            out += _valid_paths(type(default), path + ".")
        else:
            out.append(path)
    return out


def _nearest(key: str) -> str:
    """Up to three valid names closest to ``key``: whole paths first, then by the last part."""
    paths = _valid_paths()
    candidates = paths + sorted({p.split(".")[0] for p in paths if "." in p})
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if not close:
        leaf = key.split(".")[-1]
        close = [p for p in paths if difflib.get_close_matches(leaf, [p.split(".")[-1]], cutoff=0.7)][:3]
    return f"; did you mean {', '.join(close)}?" if close else ""


def _explain(exc: OmegaConfBaseException, source: str) -> UserError:
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError | ConfigAttributeError):
        return UserError(f"{source}: unknown config key '{key}'{_nearest(key)}")
    msg = str(exc).splitlines()[0]
    return UserError(f"{source}: invalid value for '{key}': {msg}")


def resolve_named_yaml(name_or_path: str, folder: Path, what: str, listed: str,
                       exclude: tuple[str, ...] = ()) -> Path:
    """A YAML file given by path, or by name (with or without .yaml) in ``folder``; otherwise
    an error listing the names there."""
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = folder / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in exclude)
    raise UserError(f"{name_or_path}: no such {what}; {listed}: {', '.join(known)}")


def resolve_preset(name_or_path: str) -> Path:
    return resolve_named_yaml(name_or_path, CONFIG_DIR, "config file or preset", "presets")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path.resolve() in seen:
        raise UserError(f"{path}: 'inherit' forms a cycle")
    try:
        data = load_plain(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    _refuse_interpolation(data, str(path))
    parent = data.pop("inherit", None)
    if parent is None:
        return data
    base = _read_yaml(resolve_preset(str(path.parent / parent) if not Path(parent).is_absolute()
                                     else parent), seen + (path.resolve(),))
    return _deep_merge(base, data)


def _refuse_interpolation(value: Any, source: str, key: str = "") -> None:
    """OmegaConf would resolve ``${...}`` (``${oc.env:HOME}`` reads the environment, which would
    then be logged to MLflow as a parameter); a run's config holds plain values only."""
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_interpolation(v, source, f"{key}{k}.")
    elif isinstance(value, list):
        for v in value:
            _refuse_interpolation(v, source, key)
    elif isinstance(value, str) and "${" in value:
        where = f" at '{key.rstrip('.')}'" if key else ""
        raise UserError(f"{source}: interpolation ${{...}} is not allowed in a config{where}; "
                        "write the value itself")


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                resolve_code: bool = False) -> RunConfig:
    """The config of ``preset`` with ``overrides``, checked. A model of the user's own
    (``family: file.py:Class`` or ``module:Class``) is imported — its code runs — only with
    ``resolve_code``, which the commands that build a model pass (its ``custom`` section is then
    checked against its ``Config``); commands that only read a config never run its code."""
    conf = OmegaConf.structured(RunConfig)
    source = "defaults"
    try:
        if preset:
            path = resolve_preset(preset)
            source = str(path)
            conf = OmegaConf.merge(conf, OmegaConf.create(_read_yaml(path)))
        for item in overrides:
            source = f"override {item!r}"
            if "=" not in item:
                raise UserError(f"{source}: expected key.sub=value")
            _refuse_interpolation(item, source)
            conf = OmegaConf.merge(conf, OmegaConf.from_dotlist([item]))
    except OmegaConfBaseException as exc:
        raise _explain(exc, source) from exc
    cfg: RunConfig = OmegaConf.to_object(conf)  # type: ignore[assignment]
    validate(cfg, resolve_code)
    return cfg


def validate(cfg: RunConfig, resolve_code: bool = False) -> None:
    from harness.core.averaging import BATCH_NORM_MODES
    from harness.data.dataset import TEXT_STRATEGIES, WRONG_STRATEGIES
    from harness.data.transforms import PREPROCESSING
    from harness.families import config_errors

    errors = config_errors(cfg, resolve_code)

    data = cfg.data
    for key, value, allowed in (("preprocessing", data.preprocessing, PREPROCESSING),
                                ("text_strategy", data.text_strategy, tuple(TEXT_STRATEGIES)),
                                ("wrong_strategy", data.wrong_strategy, WRONG_STRATEGIES)):
        if value not in allowed:
            errors.append(f"data.{key}: {value!r} is not one of {allowed}")
    if cfg.train.ema_batch_norm not in BATCH_NORM_MODES:
        errors.append(f"train.ema_batch_norm: {cfg.train.ema_batch_norm!r} is not one of "
                      f"{BATCH_NORM_MODES}")
    errors += range_errors(cfg) + name_errors(cfg)
    if errors:
        raise UserError("; ".join(errors))


# Every number of the config is range-checked: keys whose last part is listed here must be at
# least 1 (a count, a size, a cadence); any other integer at least 0; floats finite, and in the
# interval given below where one is given, else at least 0.
_AT_LEAST_ONE = ("batch_size", "log_every", "checkpoint_every", "keep_last", "sample_every",
                 "epochs", "sample_captions", "lr_decay_epochs", "grad_accumulation", "z_dim",
                 "text_dim", "ca_dim", "gf_dim", "df_dim", "t_dim", "r_num", "stage1_size",
                 "stage2_size", "image_size", "num_parts", "max_steps", "load_size", "stage")
_FLOAT_RANGES = {  # key: (low, high, low inclusive, high inclusive)
    "optim.lr_g": (0.0, math.inf, False, False), "optim.lr_d": (0.0, math.inf, False, False),
    "optim.beta1": (0.0, 1.0, True, False), "optim.beta2": (0.0, 1.0, True, False),
    "optim.eps": (0.0, math.inf, False, False),
    "optim.lr_decay_factor": (0.0, 1.0, False, True),
    "train.ema_rampup": (0.0, 1.0, True, True),
}


def range_errors(cfg: RunConfig) -> list[str]:
    flat = flatten(to_dict(cfg))
    errors = []
    for key, value in flat.items():
        if key.startswith("custom.") or isinstance(value, bool) or value is None:
            continue  # a model of your own checks its own section
        leaf = key.rsplit(".", 1)[-1]
        if isinstance(value, int):
            low = 1 if leaf in _AT_LEAST_ONE else 0
            if value < low:
                errors.append(f"{key}: {value} is less than {low}")
        elif isinstance(value, float):
            lo, hi, lo_in, hi_in = _FLOAT_RANGES.get(key, (0.0, math.inf, True, False))
            ok = math.isfinite(value) and (value >= lo if lo_in else value > lo) and \
                (value <= hi if hi_in else value < hi)
            if not ok:
                span = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
                errors.append(f"{key}: {value!r} is not in {span}")
    return errors


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=@,")


def name_errors(cfg: RunConfig) -> list[str]:
    """A run's name is one folder inside ``runs_dir``: no separators, no ``..``, nothing that
    a shell or a URL would read differently."""
    name = cfg.name
    if (not name or name in (".", "..") or name.startswith(".") or len(name) > 200
            or not set(name) <= _NAME_CHARS):
        return [f"name: {name!r} is not a folder name (letters, digits and . _ - + = @ , only; "
                "not starting with a dot; the run is written to runs_dir/name)"]
    return []


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml_file(path: str | os.PathLike) -> RunConfig:
    """A run folder's ``config.yaml`` (as ``train`` wrote it; refused with a message when it is
    not a mapping of plain values)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable YAML config ({str(exc).splitlines()[0]})") from exc
    return from_yaml_text(text, str(path))


def from_yaml_text(text: str, path: str = "<config>") -> RunConfig:
    """A config as ``to_yaml`` wrote it; ``path`` names it in errors."""
    try:
        data = load_plain(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not a readable YAML config ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    _refuse_interpolation(data, str(path))
    try:
        conf = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(data))
        return OmegaConf.to_object(conf)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise _explain(exc, str(path)) from exc


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(old: RunConfig, new: RunConfig, ignore_safe: bool = True) -> list[str]:
    """Human-readable differences ``key: old -> new``; resume-safe keys left out by default."""
    a, b = flatten(to_dict(old)), flatten(to_dict(new))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if ignore_safe and any(key == s or (s.endswith(".") and key.startswith(s))
                               for s in RESUME_SAFE_KEYS):
            continue
        diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs
