"""The family registry and the core: built-in families resolve through the same table as a
user's, the generic layers compare no family names, a model package imports only the core, and
the one batch-generation loop passes every noise stream in ``sample_noise``'s order."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.config.load import load_config
from harness.core import OptimConfig, generate_batch
from harness.errors import UserError
from harness.families import BUILTIN, Family, ModelClassFamily, family_of, model_class, resolve
from stackgan.config import ModelConfig
from stackgan.model import StackGANModel
from stackgan.networks import Stage1Generator

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(gf_dim=8, df_dim=4, ca_dim=8, z_dim=8, text_dim=32, r_num=1)


def test_generic_layers_compare_no_family_name():
    """Only harness/families knows which family is which; everywhere else asks its Family."""
    pattern = re.compile(r"family\s*(==|!=|\bin\b|\bnot in\b)|\.family\s*\]")
    offenders = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if "families" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("name, variant, size, conditions", [
    ("stackgan", "paper", 64, ()), ("gan_int_cls", "gan_int_cls", 64, ()),
    ("gawwn", "bbox", 128, ("box",))])
def test_builtin_families_answer_from_their_own_sections(name, variant, size, conditions):
    cfg = load_config(None, [f"family={name}"])
    family = family_of(cfg)
    assert isinstance(family, Family) and not isinstance(family, ModelClassFamily)
    answers = (family.variant(cfg), family.image_size(cfg), family.conditions(cfg))
    assert answers == (variant, size, conditions)
    assert resolve(name) is family  # one instance per name
    with pytest.raises(UserError, match="built in"):
        model_class(name)


def test_family_specific_config_errors_come_from_the_family():
    with pytest.raises(UserError, match="GAWWN takes shuffled_text"):
        load_config(None, ["family=gawwn", "data.wrong_strategy=in_batch"])
    with pytest.raises(UserError, match="gan_int_cls step has no micro-batches"):
        load_config(None, ["family=gan_int_cls", "optim.grad_accumulation=2"])
    load_config(None, ["family=stackgan", "optim.grad_accumulation=2"])  # StackGAN's own


def test_a_family_of_the_users_own_registers_like_the_builtins(tmp_path, monkeypatch):
    """A target may be a Family subclass, exactly as the built-ins are: its answers are used."""
    (tmp_path / "fam.py").write_text(
        "from harness.families.gan_int_cls import GanIntClsFamily\n"
        "class Wide(GanIntClsFamily):\n"
        "    def variant(self, cfg):\n"
        "        return 'wide-' + cfg.baseline.variant\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["family=fam.py:Wide"], resolve_code=True)
    family = family_of(cfg)
    assert family.variant(cfg) == "wide-gan_int_cls" and family.image_size(cfg) == 64
    model = family.build(load_config(None, ["family=fam.py:Wide", "baseline.gf_dim=8",
                                            "baseline.df_dim=8"], resolve_code=True), torch.device("cpu"))
    assert type(model).__name__ == "GanIntClsModel"


def test_unknown_family_is_refused_naming_the_builtins():
    with pytest.raises(UserError, match="not one of .*stackgan.*entry points"):
        load_config(None, ["family=no_such_family"])


def test_model_packages_import_only_the_core():
    """stackgan and baselines import harness.core (and harness.errors), never the runner, the
    config, the data or the CLI."""
    code = ("import sys, stackgan.model, baselines.gan_int_cls, baselines.gawwn; "
            "print(sorted(m for m in sys.modules if m.startswith('harness')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    loaded = eval(out)  # noqa: S307 - our own printed list
    assert loaded and all(m == "harness" or m.startswith(("harness.core", "harness.errors"))
                          for m in loaded), loaded


def test_generate_batch_passes_every_noise_stream_in_order_and_per_image():
    """Stage-II with CA in both stages draws z, eps1, eps2: generate_batch gives the images of
    the explicit call with all three, and an image depends on its own seed, not on its batch."""
    torch.manual_seed(0)
    cfg = ModelConfig(variant="paper", stage=2, stage1_size=64, stage2_size=128, **TINY)
    model = StackGANModel(cfg, OptimConfig(), stage1_generator=Stage1Generator(cfg))
    model.eval()
    emb, seeds = torch.randn(3, 32), [11, 12, 13]
    noises = [model.sample_noise(1, torch.Generator().manual_seed(s)) for s in seeds]
    assert list(noises[0]) == ["z", "eps1", "eps2"]
    stacked = {k: torch.cat([n[k] for n in noises]) for k in noises[0]}
    explicit = model.generate(emb, stacked["z"], stacked["eps1"], stacked["eps2"])
    batched = generate_batch(model, emb, seeds)
    alone = generate_batch(model, emb[1:2], seeds[1:2])
    assert torch.equal(batched["stage2"], explicit["stage2"])
    assert torch.allclose(batched["stage2"][1:2], alone["stage2"], atol=1e-6)
    with pytest.raises(ValueError, match="2 seeds for 3 embeddings"):
        generate_batch(model, emb, seeds[:2])


def test_registry_table_names_importable_family_classes():
    for name, target in BUILTIN.items():
        module, _, attr = target.partition(":")
        assert issubclass(getattr(__import__(module, fromlist=[attr]), attr), Family), name


SPEED_PRESETS = [("smoke_stage1", []), ("smoke_stage2", ["train.stage1_run=null"]),
                 ("smoke_gan_int_cls", []), ("smoke_gawwn", []), ("smoke_gawwn_keypoints", [])]


@pytest.mark.parametrize("preset, overrides", SPEED_PRESETS, ids=[p for p, _ in SPEED_PRESETS])
@pytest.mark.parametrize("channels_last", [True, False])
def test_every_family_keeps_its_convolutions_in_the_memory_format_asked(preset, overrides,
                                                                         channels_last):
    """``train.channels_last`` holds for every family (the baselines once ignored it): weights
    and the images each convolution sees are in the asked format, and a step still trains."""
    from harness.runner.summary import model_for_summary, synthetic_batch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    cfg = load_config(preset, [*overrides, f"train.channels_last={str(channels_last).lower()}"])
    model, batch = model_for_summary(cfg), synthetic_batch(cfg)
    convs = [m for net in (model.netG, model.netD) for m in net.modules()
             if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=fmt) for c in convs)
    seen = []  # what D's first convolution gets: real, wrong and generated images
    first = next(m for m in model.netD.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    stats = model.train_step(batch, 0)
    hook.remove()
    assert seen and all(x.is_contiguous(memory_format=fmt) for x in seen)
    assert all(v == v for v in stats.values())


@pytest.mark.parametrize("preset, overrides", SPEED_PRESETS, ids=[p for p, _ in SPEED_PRESETS])
def test_every_family_runs_its_forward_passes_in_bf16_when_asked(preset, overrides):
    """``train.autocast_bf16`` holds for every family: D's and G's convolutions compute in bf16
    under it, in fp32 without it, and the losses and gradients stay fp32 and finite."""
    from harness.runner.summary import model_for_summary, synthetic_batch

    for flag, dtype in (("true", torch.bfloat16), ("false", torch.float32)):
        cfg = load_config(preset, [*overrides, f"train.autocast_bf16={flag}"])
        model, batch = model_for_summary(cfg), synthetic_batch(cfg)
        dtypes = set()
        hooks = [m.register_forward_hook(lambda _, __, out, seen=dtypes: seen.add(out.dtype))
                 for net in (model.netG, model.netD) for m in net.modules()
                 if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
        stats = model.train_step(batch, 0)
        for h in hooks:
            h.remove()
        assert dtypes == {dtype}, (flag, dtypes)
        assert all(p.grad is None or (p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all())
                   for net in (model.netG, model.netD) for p in net.parameters())
        assert all(v == v and abs(v) != float("inf") for v in stats.values())


@pytest.mark.parametrize("preset, overrides", SPEED_PRESETS, ids=[p for p, _ in SPEED_PRESETS])
def test_every_family_generator_can_be_averaged_and_generates_from_its_average(preset, overrides):
    """``train.ema_half_life`` holds for every family: the average copies the generator, moves
    towards it after a step, and generates in its place."""
    from harness.core.averaging import GeneratorAverage
    from harness.core.generation import generate_batch
    from harness.runner.summary import model_for_summary, synthetic_batch

    cfg = load_config(preset, overrides)
    model, batch = model_for_summary(cfg), synthetic_batch(cfg)
    average = GeneratorAverage(model, half_life=4.0)
    average.update(model)
    before = {k: v.clone() for k, v in average.generator.state_dict().items()}
    model.train_step(batch, 0)
    average.update(model)
    moved = [k for k, v in average.generator.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]
    assert moved
    conditions = {name: batch[name][:2] for name in model.conditions}
    model.eval()
    with average.in_place_of_generator(model) as judged:
        images = generate_batch(judged, batch["embedding"][:2], [0, 1], conditions)
    assert all(torch.isfinite(v).all() for v in images.values())
