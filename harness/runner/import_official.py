"""``stackgan-bench model import stackgan-pytorch``: the authors' released StackGAN-Pytorch
checkpoints as a run folder that ``sample``, ``eval --run``, ``human make`` and the reports
accept like any trained run.

The official files are plain state dicts (code/model.py, saved by miscc/utils.py
``save_model``): ``netG_epoch_N.pth`` (Stage-I G, or Stage-II G holding its ``STAGE1_G.*``) and
``netD_epoch_last.pth``. Those released in 2017 were written by PyTorch 0.x: legacy (non-zip)
serialization and no BatchNorm ``num_batches_tracked``. They are read with ``weights_only=True``
(tensors only; no pickled code runs), renamed to this project's module names (the ``pytorch``
variant computes what the official networks compute), and refused with every unknown, missing
or mis-shaped key named.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import torch

from harness.errors import UserError

# Official name -> ours, per network (the first matching prefix rule applies).
_G1 = [(r"^ca_net\.", "ca."), (r"^upsample(\d)\.", lambda m: f"body.{int(m.group(1)) - 1}.")]
_G2 = [(r"^ca_net\.", "ca."), (r"^hr_joint\.", "joint."),
       (r"^upsample(\d)\.", lambda m: f"ups.{int(m.group(1)) - 1}.")]
_D = [(r"^encode_img\.", "encode."), (r"^get_cond_logits\.outlogits\.0\.", "cond_logits.joint.0."),
      (r"^get_cond_logits\.outlogits\.1\.", "cond_logits.joint.1."),
      (r"^get_cond_logits\.outlogits\.3\.", "cond_logits.out."),
      (r"^get_uncond_logits\.outlogits\.0\.", "uncond_logits.")]


def _rename(key: str, rules) -> str:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key, count=1)
        if n:
            return new
    return key


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad or unsafe file
        raise UserError(f"{path}: not a readable state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v)
                                              for k, v in state.items()):
        raise UserError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def load_into(module: torch.nn.Module, official: dict[str, torch.Tensor], rules, source: Path,
              prefix: str = "") -> None:
    """Rename ``official``'s keys (those under ``prefix``) and load them into ``module``, strictly:
    unknown, missing and mis-shaped keys are refused, each named. BatchNorm counters that PyTorch
    0.x did not write start at 0."""
    expected = module.state_dict()
    renamed, unknown, bad_shape, bad_value = {}, [], [], []
    for key, value in official.items():
        if not key.startswith(prefix):
            continue
        ours = _rename(key[len(prefix):], rules)
        if ours not in expected:
            unknown.append(key)
        elif not torch.is_tensor(value):
            bad_value.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(expected[ours].shape):
            bad_shape.append(f"{key} {tuple(value.shape)} (expected {tuple(expected[ours].shape)})")
        elif value.dtype != expected[ours].dtype:
            # load_state_dict would cast silently: a float64 or integer file is not the official one.
            bad_value.append(f"{key} is {value.dtype} (expected {expected[ours].dtype})")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad_value.append(f"{key} holds {int((~torch.isfinite(value)).sum())} non-finite values")
        else:
            renamed[ours] = value
    missing = [k for k in expected if k not in renamed and not k.endswith("num_batches_tracked")]
    problems = []
    if unknown:
        problems.append("unknown keys: " + ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else ""))
    if missing:
        problems.append("missing keys: " + ", ".join(prefix + k for k in missing[:10])
                        + (" …" if len(missing) > 10 else ""))
    if bad_shape:
        problems.append("wrong shapes: " + "; ".join(bad_shape[:10]))
    if bad_value:
        problems.append("bad values: " + "; ".join(bad_value[:10]) + (" …" if len(bad_value) > 10 else ""))
    if problems:
        raise UserError(f"{source}: does not fit the config's networks — " + " | ".join(problems))
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in renamed:
            renamed[key] = torch.zeros_like(value)
    module.load_state_dict(renamed)


def import_stackgan_pytorch(net_g: str, config: str, out: str, net_d: str | None = None,
                            overrides: list[str] | None = None) -> Path:
    """Write run folder ``out`` from official files; returns it."""
    from harness.atomic import atomic_directory, write_text_atomic
    from harness.checkpoints import save_checkpoint
    from harness.config.load import load_config, to_dict, to_yaml
    from harness.runner.build import build_model
    from harness.runner.seeding import code_version, library_versions
    from stackgan.networks import Stage1Generator

    out_dir = Path(out)
    cfg = load_config(config, [f"name={out_dir.name}", f"runs_dir={out_dir.parent}", *(overrides or [])])
    from harness.families import family_of
    from harness.families.stackgan import StackGANFamily

    if not isinstance(family_of(cfg), StackGANFamily) or cfg.model.variant != "pytorch":
        raise UserError(f"--config {config}: the official StackGAN-Pytorch networks are the "
                        "`pytorch` variant of the stackgan family (e.g. birds_stage1_pytorch)")
    source_g = Path(net_g)
    official_g = read_state_dict(source_g)
    stage2 = cfg.model.stage == 2
    has_stage1 = any(k.startswith("STAGE1_G.") for k in official_g)
    if stage2 != has_stage1:
        raise UserError(f"{source_g}: holds a Stage-{2 if has_stage1 else 1} generator but --config "
                        f"{config} is a Stage-{cfg.model.stage} config")
    cfg = replace(cfg, train=replace(cfg.train, stage1_run=None))
    stage1_state = None
    if stage2:
        stage1 = Stage1Generator(replace(cfg.model, stage=1))
        load_into(stage1, official_g, _G1, source_g, prefix="STAGE1_G.")
        stage1_state = stage1.state_dict()
    model = build_model(cfg, torch.device("cpu"), stage1_state=stage1_state)
    load_into(model.netG, {k: v for k, v in official_g.items() if not k.startswith("STAGE1_G.")},
              _G2 if stage2 else _G1, source_g)
    sources = {"netG": {"file": str(source_g.resolve()), "sha256": sha256_of(source_g)}}
    if net_d:
        load_into(model.netD, read_state_dict(net_d), _D, Path(net_d))
        sources["netD"] = {"file": str(Path(net_d).resolve()), "sha256": sha256_of(net_d)}
    provenance = {"imported": True, "source": "stackgan-pytorch", "files": sources, "preset": config,
                  "family": cfg.family, "variant": cfg.model.variant, "stage": cfg.model.stage,
                  **code_version(), **{f"lib.{k}": str(v) for k, v in library_versions().items()}}
    provenance = json.loads(json.dumps(provenance, default=str))  # plain data: weights_only loads it
    with atomic_directory(out_dir) as tmp:
        write_text_atomic(tmp / "config.yaml", to_yaml(cfg))
        write_text_atomic(tmp / "provenance.json", json.dumps(provenance, indent=2))
        save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "rng": {},
                         "position": {"step": 0, "epoch": 0, "batch": 0}, "imported": provenance},
                        tmp / "checkpoints" / "final.pt")
    _track(cfg, out_dir, provenance)
    return out_dir


def _track(cfg, run_dir: Path, provenance: dict) -> None:
    from harness.config.load import flatten, to_dict
    from harness.tracking.mlflow_tracker import Tracker, default_uri

    tracker = Tracker(cfg.tracking.uri or default_uri(cfg.runs_dir), cfg.tracking.experiment, run_dir,
                      cfg.name, enabled=cfg.tracking.enabled)
    tracker.log_params(flatten(to_dict(cfg)))
    tags = {"imported": "true", "source": "stackgan-pytorch", "preset": provenance["preset"],
            "family": cfg.family, "variant": cfg.model.variant, "stage": cfg.model.stage}
    tags.update({f"source.{net}.sha256": info["sha256"] for net, info in provenance["files"].items()})
    tracker.set_tags(tags)
    tracker.log_artifact(run_dir / "config.yaml")
    tracker.end()
