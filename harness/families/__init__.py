"""The registry of model families: one table from a config's ``family`` to its ``Family``.

A config names its family by one of:
- a name in ``BUILTIN`` (``stackgan``, ``gan_int_cls``, ``gawwn``);
- a name an installed package registers in the entry-point group ``stackgan_bench.models``
  (``[project.entry-points."stackgan_bench.models"] mygan = "mypkg.models:MyGAN"``);
- ``package.module:Class`` (importable) or ``path/to/file.py:Class`` (relative to the working
  folder).

Each resolves to a ``module:attribute`` target and is imported the same way. A target may be a
``Family`` subclass (as the built-ins are: their sections are typed fields of the run config) or a
model class implementing ``harness.core.interface`` with a ``Config`` dataclass (its section is
``Config(**custom)``). The generic layers ask the ``Family`` and never compare family names.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

from harness.core.interface import REQUIRED
from harness.errors import UserError
from harness.families.base import Family, ModelClassFamily

ENTRY_POINT_GROUP = "stackgan_bench.models"
BUILTIN = {
    "stackgan": "harness.families.stackgan:StackGANFamily",
    "gan_int_cls": "harness.families.gan_int_cls:GanIntClsFamily",
    "gawwn": "harness.families.gawwn:GawwnFamily",
}


def entry_point_target(name: str) -> str | None:
    """The target an installed package registers for ``name`` (reads metadata, imports nothing)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.value
    return None


def _target(family: str) -> str:
    target = BUILTIN.get(family) or (family if ":" in family else entry_point_target(family))
    if target is None:
        raise UserError(f"family: {family!r} is not one of {tuple(BUILTIN)}, not module:Class or "
                        f"file.py:Class, and no installed package registers it in the "
                        f"{ENTRY_POINT_GROUP!r} entry points")
    return target


def _import(target: str):
    where, _, name = target.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.exists():
                raise UserError(f"family: {path} does not exist (paths are relative to {Path.cwd()})")
            spec = importlib.util.spec_from_file_location(f"stackgan_bench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module may fail in any way
        raise UserError(f"family: cannot import {where!r} ({type(exc).__name__}: {exc})") from exc
    obj = getattr(module, name, None)
    if obj is None:
        raise UserError(f"family: {where!r} has no {name!r}")
    return obj


@lru_cache(maxsize=32)
def resolve(family: str) -> Family:
    """The ``Family`` that ``family`` names, its model class checked against the interface."""
    target = _target(family)
    obj = _import(target)
    if isinstance(obj, type) and issubclass(obj, Family):
        return obj()
    missing = [m for m in REQUIRED if not callable(getattr(obj, m, None))]
    if not hasattr(obj, "Config"):
        missing.append("Config (the dataclass of its hyperparameters)")
    if missing:
        raise UserError(f"family: {target} lacks what the harness calls: {', '.join(missing)} "
                        "(see harness/core/interface.py)")
    return ModelClassFamily(family, obj)


def family_of(cfg) -> Family:
    return resolve(cfg.family)


def model_class(family: str) -> type:
    """The model class of a family of the user's own (``module:Class``, a file, an entry point)."""
    found = resolve(family)
    if not isinstance(found, ModelClassFamily):
        raise UserError(f"family: {family!r} is built in, not a model class of your own")
    return found.model_class


def config_errors(cfg, resolve_code: bool = False) -> list[str]:
    """What the family finds wrong in ``cfg``. A family of the user's own is imported (its code
    runs) only with ``resolve_code``; without it only its name is checked, against the installed
    packages' metadata."""
    if cfg.family in BUILTIN or resolve_code:
        return family_of(cfg).config_errors(cfg)
    if ":" not in cfg.family:
        _target(cfg.family)  # raises if no installed package registers the name
    errors = []
    if cfg.optim.grad_accumulation != 1:
        errors.append(f"optim.grad_accumulation: the {cfg.family} step has no micro-batches")
    return errors


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Family", "ModelClassFamily", "config_errors",
           "entry_point_target", "family_of", "model_class", "resolve"]
