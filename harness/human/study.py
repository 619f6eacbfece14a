"""``human make``: a blinded human-rating study (the StackGAN paper's protocol: random test
descriptions, K images
per model per description, raters rank the models).

Layout of a study folder:
  study.json        what raters see, without model identities: items (caption, groups of opaque
                    image ids), each rater's item order and group positions, the options
  key.json          secret: which model each group and image came from, the attention checks'
                    answers, the raters' tokens for `human serve`. Never handed out or served.
  share/images/     the images under opaque names
  share/<rater>/    form.html (self-contained; form-partNN.html when larger than --part-mb, each
                    part saved by the rater and scored as one response) and sheet.csv, one folder
                    per rater (no forms with --served-only: `human serve` renders them)

Everything random (caption choice, ids, orders, positions, noise images) comes from ``seed``, so
the same inputs and seed give the same study.
"""

from __future__ import annotations

import json
import random
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from harness.atomic import atomic_directory
from harness.data.dataset import load_image
from harness.data.real_images import RealSplitInput
from harness.data.samples_manifest import read_manifest
from harness.data.sources import load_index
from harness.errors import UserError

STUDY_FORMAT = "stackgan-bench-study/1"
KEY_FORMAT = "stackgan-bench-study-key/1"
REAL, NOISE = "__real__", "__noise__"


@dataclass
class StudyOptions:
    sources: list[str]  # run folders (sampled here) or `sample` folders (reused)
    out: str
    captions: int = 5  # per test class with per_class, else overall
    per_class: bool = False
    per_model: int = 5
    raters: int = 10
    seed: int = 0
    names: list[str] | None = None  # display-free model names for the key (default: folder names)
    data: str | None = None  # dataset folder (default: the first run's)
    split: str = "test"
    ratings: bool = True  # optional 5-point alignment and realism ratings in the forms
    attention_checks: bool = True
    device: str = "cpu"
    progress: bool = True
    part_mb: float = 20.0  # offline forms above this size are split into parts
    offline_forms: bool = True
    title: str = "Which images match the description best?"
    # Filled in by make_study.
    models: list[str] = field(default_factory=list)


def _kind(source: Path) -> str:
    if (source / "config.yaml").exists():
        return "run"
    if (source / "manifest.jsonl").exists():
        return "samples"
    raise UserError(f"{source}: neither a run folder (config.yaml) nor a sample folder "
                    "(manifest.jsonl)")


def _dataset_of(source: Path, kind: str) -> str | None:
    if kind == "run":
        from harness.config.load import from_yaml_file

        return from_yaml_file(source / "config.yaml").data.root
    return None


def pick_captions(root: str, split: str, count: int, per_class: bool, seed: int) -> list[dict]:
    """``count`` random captions per class of the split (or overall), as the paper picked them."""
    index = load_index(root, split)
    rng = random.Random(seed)
    pairs = [(i, c) for i in range(len(index)) for c in range(len(index.captions(i)))]
    if per_class:
        by_class: dict[int, list] = {}
        for i, c in pairs:
            by_class.setdefault(int(index.class_ids[i]), []).append((i, c))
        chosen = []
        for cls in sorted(by_class):
            pool = by_class[cls]
            if len(pool) < count:
                raise UserError(f"{root}: class {cls} has {len(pool)} captions, fewer than {count}")
            chosen += rng.sample(pool, count)
    else:
        if len(pairs) < count:
            raise UserError(f"{root}: the {split} split has {len(pairs)} captions, fewer than {count}")
        chosen = rng.sample(pairs, count)
    return [{"caption_id": f"{index.keys[i]}#{c}", "caption": index.captions(i)[c],
             "class_id": int(index.class_ids[i]), "image_index": i} for i, c in chosen]


def _images_from_samples(folder: Path, caption_ids: list[str], per_model: int) -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = {}
    for rec in read_manifest(folder, required=("caption_id",)):
        records.setdefault(rec["caption_id"], []).append(rec)
    out = {}
    for cid in caption_ids:
        recs = sorted(records.get(cid, []), key=lambda r: r.get("sample_index", 0))
        if len(recs) < per_model:
            raise UserError(f"{folder}: has {len(recs)} images for caption {cid}, the study needs "
                            f"{per_model}; sample it with --per-caption {per_model} or sample a run")
        out[cid] = [{"file": str(folder / r["file"]), "noise_seed": r.get("noise_seed")}
                    for r in recs[:per_model]]
    return out


def _image_ids(rng: random.Random, n: int) -> list[str]:
    ids: set[str] = set()
    out = []
    while len(out) < n:
        candidate = f"{rng.getrandbits(48):012x}"
        if candidate not in ids:
            ids.add(candidate)
            out.append(candidate)
    return out


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG")


def make_study(opts: StudyOptions) -> dict:
    if opts.per_model < 1 or opts.raters < 1 or opts.captions < 1:
        raise UserError("--per-model, --raters and --captions must be at least 1")
    if not opts.part_mb > 0:
        raise UserError("--part-mb must be positive")
    sources = [Path(s) for s in opts.sources]
    if len(sources) < 2:
        raise UserError("a study compares at least two models (--runs A B ...)")
    names = opts.names or [s.resolve().name for s in sources]
    if len(names) != len(sources) or len(set(names)) != len(names):
        raise UserError(f"model names {names} must be unique, one per source")
    kinds = [_kind(s) for s in sources]
    data = opts.data or next((_dataset_of(s, k) for s, k in zip(sources, kinds, strict=True)
                              if k == "run"), None)
    if data is None:
        raise UserError("with sample folders only, name the dataset their captions come from (--data)")
    captions = pick_captions(data, opts.split, opts.captions, opts.per_class, opts.seed)
    caption_ids = [c["caption_id"] for c in captions]
    rng = random.Random(f"{opts.seed}:ids")
    out = Path(opts.out)
    from harness.locks import exclusive

    # One maker per output (a lock file beside it: the study folder appears whole at the end).
    with exclusive(out, "makes a study", path=out.with_name(f".{out.name}.lock")):
        return _make_study(opts, out, sources, names, kinds, data, captions, caption_ids, rng)


def _make_study(opts: StudyOptions, out: Path, sources, names, kinds, data, captions, caption_ids,
                rng: random.Random) -> dict:
    from harness.runner.sample import sample_run

    if out.exists():
        raise UserError(f"{out}: exists; a study is written once (choose another --out)")
    from harness.atomic import remove_stale_temporaries

    remove_stale_temporaries(out.parent, out.name)  # a killed maker's .partial (we hold the lock)

    with tempfile.TemporaryDirectory(prefix="study-samples-") as scratch, \
            atomic_directory(out) as tmp:
        images: dict[str, dict[str, list[dict]]] = {}
        for name, source, kind in zip(names, sources, kinds, strict=True):
            folder = source
            if kind == "run":
                folder = Path(scratch) / name
                sample_run(source, folder, split=opts.split, per_caption=opts.per_model,
                           seed=opts.seed, device=opts.device, progress=opts.progress,
                           caption_ids=caption_ids)
            images[name] = _images_from_samples(folder, caption_ids, opts.per_model)
        size = load_image(images[names[0]][caption_ids[0]][0]["file"]).size[0]

        share = tmp / "share"
        (share / "images").mkdir(parents=True)
        key_images: dict[str, dict] = {}
        key_groups: dict[str, str] = {}
        items = []

        def add_group(label: str, files: list[tuple[str | None, np.ndarray | None, dict]]) -> dict:
            gid = _image_ids(rng, 1)[0]
            key_groups[gid] = label
            ids = _image_ids(rng, len(files))
            for image_id, (src, arr, meta) in zip(ids, files, strict=True):
                dst = share / "images" / f"{image_id}.png"
                if src is not None:
                    # Re-encode: a copied file could carry the model's name in its metadata.
                    _save_png(np.array(load_image(src)), dst)
                else:
                    _save_png(arr, dst)
                key_images[image_id] = {"group": gid, "model": label, **meta}
            return {"group_id": gid, "images": ids}

        for cap in captions:
            cid = cap["caption_id"]
            groups = [add_group(name, [(r["file"], None, {"caption_id": cid, "source": r["file"],
                                                          "noise_seed": r["noise_seed"]})
                                       for r in images[name][cid]]) for name in names]
            items.append({"item_id": _image_ids(rng, 1)[0], "kind": "regular", "caption": cap["caption"],
                          "caption_id": cid, "class_id": cap["class_id"], "groups": groups})

        checks: dict[str, dict] = {}
        if opts.attention_checks:
            # Real images against pure noise: any attentive rater ranks the real group first.
            cap = captions[rng.randrange(len(captions))]
            real = RealSplitInput(data, opts.split, size)
            same_class = [i for i in range(len(real.index))
                          if int(real.index.class_ids[i]) == cap["class_id"]]
            picks = [cap["image_index"]] + rng.sample([i for i in same_class if i != cap["image_index"]],
                                                      min(opts.per_model - 1, len(same_class) - 1))
            while len(picks) < opts.per_model:
                picks.append(cap["image_index"])
            real_files = [(None, real[i].permute(1, 2, 0).numpy(),
                           {"caption_id": cap["caption_id"], "real_image": real.index.keys[i]})
                          for i in picks]
            noise_rng = np.random.default_rng(opts.seed)
            groups = [add_group(REAL, real_files)]
            for _ in names[1:]:
                groups.append(add_group(NOISE, [
                    (None, noise_rng.integers(0, 256, (size, size, 3), dtype=np.uint8), {})
                    for _ in range(opts.per_model)]))
            check = {"item_id": _image_ids(rng, 1)[0], "kind": "check", "caption": cap["caption"],
                     "caption_id": cap["caption_id"], "groups": groups}
            checks[check["item_id"]] = {"type": "real_vs_noise", "real_group": groups[0]["group_id"]}
            # A repeated item (new ids, other positions): its ranking should agree with the first.
            original = items[rng.randrange(len(items))]
            repeat_groups = []
            for g in original["groups"]:
                gid = _image_ids(rng, 1)[0]
                key_groups[gid] = key_groups[g["group_id"]]
                repeat_groups.append({"group_id": gid, "images": g["images"]})
            repeat = {"item_id": _image_ids(rng, 1)[0], "kind": "check", "caption": original["caption"],
                      "caption_id": original["caption_id"], "groups": repeat_groups}
            checks[repeat["item_id"]] = {"type": "repeat", "of": original["item_id"],
                                         "groups": {r["group_id"]: g["group_id"] for r, g in
                                                    zip(repeat_groups, original["groups"], strict=True)}}
            all_items = items + [check, repeat]
        else:
            all_items = list(items)

        raters = []
        tokens = {}
        for r in range(opts.raters):
            rater_id = f"r{r + 1:02d}"
            rrng = random.Random(f"{opts.seed}:rater:{rater_id}")
            order = [it["item_id"] for it in all_items]
            rrng.shuffle(order)
            if opts.attention_checks and order.index(repeat["item_id"]) < order.index(original["item_id"]):
                # Show the repeat after the original, so it is a repeat for the rater.
                a, b = order.index(repeat["item_id"]), order.index(original["item_id"])
                order[a], order[b] = order[b], order[a]
            positions = {}
            for it in all_items:
                gids = [g["group_id"] for g in it["groups"]]
                rrng.shuffle(gids)
                positions[it["item_id"]] = gids
            raters.append({"rater_id": rater_id, "order": order, "positions": positions})
            # Tokens are secrets, not derived from the seed (which is recorded and guessable).
            tokens[rater_id] = secrets.token_urlsafe(16)

        study_id = _image_ids(random.Random(f"{opts.seed}:{caption_ids}:{names}"), 1)[0]
        study = {"format": STUDY_FORMAT, "study_id": study_id, "title": opts.title,
                 "models": len(names), "per_model": opts.per_model, "ratings": opts.ratings,
                 "items": all_items, "raters": raters}
        key = {"format": KEY_FORMAT, "study_id": study_id, "seed": opts.seed,
               "models": {n: {"source": str(s.resolve()), "kind": k}
                          for n, s, k in zip(names, sources, kinds, strict=True)},
               "groups": key_groups, "images": key_images, "checks": checks, "tokens": tokens,
               "admin_token": secrets.token_urlsafe(16),
               "options": {k: v for k, v in asdict(opts).items() if k not in ("models", "progress")},
               "data": str(Path(data).resolve()), "image_size": size}
        (tmp / "study.json").write_text(json.dumps(study, indent=1, ensure_ascii=False), encoding="utf-8")
        (tmp / "key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")
        # The study folder follows the umask (a group can share it); key.json holds the model
        # key and every token, so only its owner reads it.
        (tmp / "key.json").chmod(0o600)
        from harness.human.form import render_form_parts, render_sheet

        sizes = []
        for rater in raters:
            folder = share / rater["rater_id"]
            folder.mkdir()
            if opts.offline_forms:
                try:
                    parts = render_form_parts(study, rater["rater_id"], share / "images",
                                              int(opts.part_mb * 1e6))
                except ValueError as exc:
                    raise UserError(f"--part-mb {opts.part_mb:g}: {exc}") from None
                for n, page in enumerate(parts, 1):
                    name = "form.html" if len(parts) == 1 else f"form-part{n:02d}.html"
                    data = page.encode("utf-8")
                    (folder / name).write_bytes(data)
                    sizes.append(len(data))
            (folder / "sheet.csv").write_text(render_sheet(study, rater["rater_id"]), encoding="utf-8")
    return {"study_id": study_id, "out": str(out), "items": len(items), "checks": len(checks),
            "raters": opts.raters, "models": names, "form_parts": len(sizes),
            "form_bytes": sum(sizes), "largest_form_bytes": max(sizes, default=0)}


def load_study(folder: str | Path) -> tuple[dict, dict]:
    folder = Path(folder)
    out = []
    for name, fmt in (("study.json", STUDY_FORMAT), ("key.json", KEY_FORMAT)):
        path = folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise UserError(f"{path}: missing; is {folder} a study folder (`human make`)?") from exc
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from exc
        if data.get("format") != fmt:
            raise UserError(f"{path}: not a {fmt} file")
        out.append(data)
    if out[0]["study_id"] != out[1]["study_id"]:
        raise UserError(f"{folder}: study.json and key.json belong to different studies")
    return out[0], out[1]


__all__ = ["StudyOptions", "make_study", "load_study", "pick_captions", "REAL", "NOISE"]
