"""The ``pipeline:`` section of a scale in definitions/scales.yaml: what ``reproduce`` does around
the runs. Typed like a run config: an unknown key or a wrong type is refused with the scale's
name and the nearest valid key, instead of being silently ignored."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from harness.errors import UserError


@dataclass
class EvalSection:
    """The evaluation of every run: a named protocol (or captions per test image and images per
    caption), the metrics, the evaluators' image size (null: their preset sizes) and the spreads."""
    protocol: str | None = None
    captions_per_image: int | None = None
    per_caption: int | None = None
    size: int | None = None
    splits: int = 10
    kid_subset_size: int = 1000
    metrics: list[str] = field(default_factory=lambda: ["is", "fid", "kid"])


@dataclass
class HumanSection:
    """The blinded human-study materials (``human make``)."""
    captions: int = 10
    per_class: bool = False
    per_model: int = 5
    raters: int = 10


@dataclass
class ValidateSection:
    """In-training validation (val.fid on ``images`` images) every ``every`` steps and
    ``per_doubling`` times per doubling of steps over each run's last ``doublings`` doublings
    (log-spaced, for the plateau test); off when both are null."""
    every: int | None = None
    images: int = 256
    per_doubling: int | None = None
    doublings: int = 1


@dataclass
class ValiditySection:
    """The rulers checked against controlled degradations of real images before any verdict."""
    bootstrap: int = 2000


@dataclass
class PipelineConfig:
    # The built-in dataset's rendering options (harness.data.synthbirds.build.SynthOptions).
    synth: dict[str, Any] = field(default_factory=dict)
    text_preset: str = "small"
    text_steps: int | None = None  # null: the preset's
    eval_text_steps: int | None = None
    classifier_preset: str = "small"
    classifier_steps: int | None = None
    classifier_width: int | None = None  # the small classifiers' width and batch (null: 32, 64)
    classifier_batch_size: int | None = None
    attribute_steps: int = 800
    attribute_renders: int | None = None  # novel-species renders (null: as many as real images)
    evaluator_size: int | None = None  # the evaluators' image size (null: their presets')
    eval: EvalSection = field(default_factory=EvalSection)
    human: HumanSection = field(default_factory=HumanSection)
    validate: ValidateSection = field(default_factory=ValidateSection)
    # bf16 autocast for every training run: off, on, or native (on where the CPU computes bf16
    # in hardware, AVX512-BF16 or AMX, or on a CUDA device with bf16; fp32 elsewhere, where
    # emulated bf16 is about 2x slower than fp32). Resolved when the runs are planned, so each
    # run's config.yaml records what it trained with; --set train.autocast_bf16=... overrides it.
    autocast_bf16: str = "off"
    validity: ValiditySection | None = None  # the metric-validity check runs only when given
    # The section as written: the steps' input hashes read it, so that adding a default here
    # does not make finished steps look out of date.
    declared: dict[str, Any] = field(default_factory=dict)


def _keys(cls, prefix: str = "") -> list[str]:
    out = []
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            out += _keys(type(default), f"{prefix}{f.name}.")
        out.append(prefix + f.name)
    return out


def parse_pipeline(section: dict | None, where: str) -> PipelineConfig:
    """``section`` (a scale's ``pipeline:`` mapping) checked against ``PipelineConfig``."""
    from harness.data.synthbirds.build import SynthOptions

    section = dict(section or {})
    if "declared" in section:
        raise UserError(f"{where}.pipeline: 'declared' is not a key of the pipeline section")
    synth = section.get("synth") or {}
    if not isinstance(synth, dict):
        raise UserError(f"{where}.pipeline.synth: expected a mapping of SynthOptions fields")
    known_synth = [f.name for f in fields(SynthOptions)]
    for key in synth:
        if key not in known_synth:
            close = difflib.get_close_matches(str(key), known_synth, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; keys: {', '.join(known_synth)}"
            raise UserError(f"{where}.pipeline.synth: unknown key {key!r}{hint}")
    typed = {k: v for k, v in section.items() if k != "synth"}
    try:
        conf = OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.create(typed))
        pipe: PipelineConfig = OmegaConf.to_object(conf)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        if isinstance(exc, ConfigKeyError):
            close = difflib.get_close_matches(key, _keys(PipelineConfig), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"{where}.pipeline: unknown key '{key}'{hint}") from None
        raise UserError(f"{where}.pipeline: invalid value for '{key}': "
                        f"{str(exc).splitlines()[0]}") from None
    pipe.synth, pipe.declared = dict(synth), section
    return pipe
