import json
import re

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from harness.data.fingerprint import fingerprint_from_hashes, hash_tree
from harness.data.safe_pickle import safe_load_pickle
from harness.data.synthbirds import build as build_mod
from harness.data.synthbirds.build import SynthOptions, build_synthbirds
from harness.data.synthbirds.vocab import COLOURS, make_species
from harness.errors import UserError


def test_same_bytes_on_rerun_whatever_the_worker_count(tiny_synth, tmp_path):
    again = tmp_path / "again"
    manifest = build_synthbirds(again, TINY, workers=2, progress=False)
    assert hash_tree(again, exclude=()) == hash_tree(tiny_synth, exclude=())
    assert manifest["fingerprint"] == fingerprint_from_hashes(hash_tree(again))


def test_another_seed_gives_other_data(tiny_synth, tmp_path):
    other = build_synthbirds(tmp_path / "o", SynthOptions(**{**TINY.__dict__, "seed": 4}),
                             workers=1, progress=False)
    assert other["fingerprint"] != json.loads((tiny_synth / "manifest.json").read_text())["fingerprint"]


def test_cub_layout_and_class_disjoint_split(tiny_synth):
    cub = tiny_synth / "CUB_200_2011"
    for name in ("images.txt", "image_class_labels.txt", "classes.txt", "bounding_boxes.txt",
                 "train_test_split.txt", "parts/part_locs.txt", "parts/parts.txt",
                 "attributes/attributes.txt", "attributes/image_attribute_labels.txt"):
        assert (cub / name).is_file(), name
    images = [ln.split() for ln in (cub / "images.txt").read_text().splitlines()]
    assert len(images) == TINY.classes * TINY.per_class
    for _image_id, rel in images:
        assert re.fullmatch(r"\d{3}\.[A-Za-z_0-9]+/[A-Za-z_0-9]+\.jpg", rel)
        assert (cub / "images" / rel).is_file()
        assert len((tiny_synth / "text_c10" / rel.replace(".jpg", ".txt")).read_text()
                   .splitlines()) == 10
    train = safe_load_pickle(tiny_synth / "train" / "filenames.pickle")
    test = safe_load_pickle(tiny_synth / "test" / "filenames.pickle")
    train_cls = set(safe_load_pickle(tiny_synth / "train" / "class_info.pickle"))
    test_cls = set(safe_load_pickle(tiny_synth / "test" / "class_info.pickle"))
    assert len(test_cls) == TINY.test_classes and not train_cls & test_cls
    assert len(train) + len(test) == len(images)
    parts = (cub / "parts" / "part_locs.txt").read_text().splitlines()
    assert len(parts) == 15 * len(images)


def test_boxes_lie_inside_images_and_cover_the_bird(tiny_synth):
    cub = tiny_synth / "CUB_200_2011"
    paths = dict(ln.split() for ln in (cub / "images.txt").read_text().splitlines())
    for line in (cub / "bounding_boxes.txt").read_text().splitlines():
        image_id, *box = line.split()
        x, y, w, h = map(float, box)
        with Image.open(cub / "images" / paths[image_id]) as im:
            W, H = im.size
        assert 0 <= x and 0 <= y and w > 5 and h > 5 and x + w <= W + 0.05 and y + h <= H + 0.05


def test_captions_only_state_what_the_image_shows(tiny_synth):
    """Independent of the grammar: every colour word a caption uses is one of the bird's."""
    species = {s["class_id"]: s for s in json.loads((tiny_synth / "species.json").read_text())}
    words = {c: c for c in COLOURS} | {"gray": "grey"}
    cub = tiny_synth / "CUB_200_2011"
    labels = dict(ln.split() for ln in (cub / "image_class_labels.txt").read_text().splitlines())
    for image_id, rel in (ln.split() for ln in (cub / "images.txt").read_text().splitlines()):
        sp = species[int(labels[image_id])]
        shown = {sp["crown"], sp["wing"], sp["underparts"], sp["tail"], sp["wing_accent"]}
        for caption in (tiny_synth / "text_c10" / rel.replace(".jpg", ".txt")).read_text().splitlines():
            named = {words[w] for w in re.findall(r"[a-z]+", caption) if w in words}
            assert named <= shown, (caption, shown)
            said = re.search(r"\b(small|little|tiny|large|big|medium[- ]sized) bird\b", caption)
            if said:
                size = {"little": "small", "tiny": "small", "big": "large"}.get(said[1], said[1])
                assert sp["size"] == size.split()[0].replace("-sized", "").replace(
                    "medium", "medium"), (caption, sp["size"])


def test_caption_attribute_ids_are_true_attributes(tiny_synth):
    cub = tiny_synth / "CUB_200_2011"
    present: dict[str, set[int]] = {}
    for line in (cub / "attributes" / "image_attribute_labels.txt").read_text().splitlines():
        image_id, attr, is_present, *_ = line.split()
        if is_present == "1":
            present.setdefault(image_id, set()).add(int(attr))
    ids = {rel.rsplit(".", 1)[0]: i for i, rel in
           (ln.split() for ln in (cub / "images.txt").read_text().splitlines())}
    for line in (cub / "attributes" / "caption_attributes.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert len(rec["captions"]) == 10
        for named in rec["captions"]:
            assert named and set(named) <= present[ids[rec["key"]]]


def test_species_are_distinct():
    species = make_species(200, 0)
    keys = {(s.crown, s.wing, s.underparts, s.tail, s.wing_pattern, s.beak_shape, s.beak_length,
             s.size) for s in species}
    assert len(keys) == 200 and len({s.name for s in species}) == 200


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "_write_layout", boom)
    with pytest.raises(KeyboardInterrupt):
        build_synthbirds(tmp_path / "out", TINY, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused(tiny_synth):
    with pytest.raises(UserError, match="already exists"):
        build_synthbirds(tiny_synth, TINY, workers=1, progress=False)


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(UserError, match="--per-class"):
        build_synthbirds(tmp_path / "x", SynthOptions(per_class=0), progress=False)


def test_images_differ_within_a_species(tiny_synth):
    folder = next((tiny_synth / "CUB_200_2011" / "images").iterdir())
    arrays = [np.asarray(Image.open(p), dtype=float) for p in sorted(folder.iterdir())[:2]]
    assert np.abs(arrays[0] - arrays[1]).mean() > 10


def test_the_miniature_plain_scene_big_birds_salient_colours(tmp_path):
    from dataclasses import replace

    from harness.data.synthbirds.vocab import SALIENT_PALETTE
    from harness.eval.attribute_renders import render_novel_birds

    mini = replace(TINY, scene="plain", fill=(0.6, 0.9), palette="salient")
    manifest = build_synthbirds(tmp_path / "mini", mini, workers=1, progress=False)
    assert manifest["options"]["scene"] == "plain" and manifest["options"]["palette"] == "salient"
    species = json.loads((tmp_path / "mini" / "species.json").read_text())
    assert {s[k] for s in species for k in ("crown", "wing", "underparts", "tail")} <= set(SALIENT_PALETTE)
    # The same seed gives the same bytes; the defaults' dataset is another one.
    again = build_synthbirds(tmp_path / "again", mini, workers=2, progress=False)
    assert again["fingerprint"] == manifest["fingerprint"]
    default = build_synthbirds(tmp_path / "default", TINY, workers=1, progress=False)
    assert default["fingerprint"] != manifest["fingerprint"]
    # Big birds: every box spans at least half the image (the default's go down to a fifth).
    for line in (tmp_path / "mini" / "CUB_200_2011" / "bounding_boxes.txt").read_text().splitlines():
        _, _, _, w, h = (float(v) for v in line.split())
        assert max(w, h) >= 0.5 * TINY.size
    # A plain backdrop: with the bird drawn over it, a render's scene is the pale gradient.
    from harness.data.synthbirds.render import render_bird

    sp = make_species(1, 0, "salient")[0]
    plain = render_bird(sp, np.random.default_rng(0), 64, "plain", (0.6, 0.9))
    varied = render_bird(sp, np.random.default_rng(0), 64)
    assert plain.background == "plain" and varied.background != "plain"
    # The attribute classifier's novel-species renders follow the dataset's palette.
    _, values = render_novel_birds(tmp_path / "mini", 6, 32, seed=0, workers=0)
    assert {v[k] for v in values for k in ("crown_color", "wing_color")} <= set(SALIENT_PALETTE)


def test_miniature_options_are_checked():
    from dataclasses import replace

    for bad in ({"scene": "forest"}, {"fill": (0.9, 0.5)}, {"palette": "neon"}, {"parts": "huge"},
                {"captions": "shapes"}):
        with pytest.raises(UserError):
            replace(TINY, **bad).validate()


def _part_pixels(sp, part: str, parts: str, seed: int, size: int = 64) -> int:
    """Pixels that change when ``part`` is drawn in another colour: the pixels it covers."""
    from dataclasses import replace

    from harness.data.synthbirds.render import render_bird

    other = "yellow" if getattr(sp, part) != "yellow" else "blue"
    a = np.asarray(render_bird(sp, np.random.default_rng(seed), size, "plain", (0.6, 0.9), parts).image, int)
    b = np.asarray(render_bird(replace(sp, **{part: other}), np.random.default_rng(seed), size, "plain",
                               (0.6, 0.9), parts).image, int)
    return int((np.abs(a - b).max(-1) > 40).sum())


def test_salient_parts_draw_a_bigger_crown_and_tail():
    species = [s for s in make_species(12, 0, "salient")][:6]
    for part in ("crown", "tail"):
        natural = sum(_part_pixels(sp, part, "natural", k) for k, sp in enumerate(species))
        salient = sum(_part_pixels(sp, part, "salient", k) for k, sp in enumerate(species))
        assert salient > 1.4 * natural, (part, natural, salient)
    under = [_part_pixels(sp, "underparts", p, 0) for sp in species[:2] for p in ("natural", "salient")]
    assert all(u > 0 for u in under)


def test_colour_captions_name_only_part_colours(tmp_path):
    from dataclasses import replace

    colours = replace(TINY, captions="colours", parts="salient", palette="salient", scene="plain",
                      fill=(0.6, 0.9))
    build_synthbirds(tmp_path / "c", colours, workers=1, progress=False)
    from harness.eval.attributes import read_attributes

    table = read_attributes(tmp_path / "c")
    named = {table.by_id[i][0] for caps in table.caption_ids.values() for ids in caps for i in ids}
    assert named == {"crown_color", "wing_color", "underparts_color", "tail_color"}
    text = " ".join(f.read_text() for f in (tmp_path / "c" / "text_c10").rglob("*.txt"))
    assert "wings" in text and not re.search(r"\b(beak|bill|striped|spotted|small|large)\b", text)
