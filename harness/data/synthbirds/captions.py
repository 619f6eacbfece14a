"""CUB-style captions from a small grammar with synonyms and varying word order.

Every caption names a random subset of the species' attributes and nothing else, so it is true
of the image. Each caption is returned with the attributes it names (for attribute accuracy).
"""

from __future__ import annotations

import numpy as np

from harness.data.synthbirds.vocab import Species

_COLOUR_WORDS = {"grey": ("grey", "gray"), "multicoloured": ("multicolored", "multi-colored")}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium sized", "medium-sized"),
               "large": ("large", "big")}
_BEAK_SHAPE_WORDS = {"cone": ("cone-shaped", "conical", "thick"), "pointed": ("pointed", "sharp"),
                     "hooked": ("hooked", "curved"), "needle": ("needle-like", "thin")}
_BEAK_LENGTH_WORDS = {"short": ("short", "small"), "long": ("long",)}


CAPTION_KINDS = ("all", "colours")


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(0, len(options)))]


def _colour(rng, c: str) -> str:
    return _pick(rng, _COLOUR_WORDS.get(c, (c,)))


def _phrase(kind: str, sp: Species, rng: np.random.Generator) -> tuple[str, list[str]]:
    """A noun phrase for one attribute group, and the attribute keys it names."""
    if kind == "crown":
        c = _colour(rng, sp.crown)
        return _pick(rng, (f"a {c} crown", f"a {c} head", f"a {c} cap")), ["crown_color"]
    if kind in ("wing", "wing_colour"):  # wing_colour: the colour alone, never the pattern
        c = _colour(rng, sp.wing)
        if kind == "wing_colour" or rng.uniform() < 0.5:  # the colour alone
            return _pick(rng, (f"{c} wings", f"{c} wingbars", f"{c} secondaries")), ["wing_color"]
        a = _colour(rng, sp.wing_accent)
        keys = ["wing_color", "wing_pattern"]
        phrases = {
            "solid": (f"plain {c} wings", f"solid {c} wings"),
            "striped": (f"{c} wings with {a} stripes", f"{c} and {a} striped wings",
                        f"barred {c} wings"),
            "spotted": (f"{c} wings covered in {a} spots", f"spotted {c} wings",
                        f"speckled {c} wings"),
            "multicoloured": (f"{_colour(rng, 'multicoloured')} wings", f"{c} multicolored wings"),
        }[sp.wing_pattern]
        phrase = _pick(rng, phrases)
        if sp.wing_pattern == "multicoloured" and c not in phrase:
            keys = ["wing_pattern"]
        return phrase, keys
    if kind == "underparts":
        c = _colour(rng, sp.underparts)
        return _pick(rng, (f"a {c} belly", f"a {c} breast", f"{c} underparts",
                           f"a {c} chest and belly", f"a {c} abdomen")), ["underparts_color"]
    if kind == "tail":
        c = _colour(rng, sp.tail)
        return _pick(rng, (f"a {c} tail", f"{c} tail feathers", f"a {c} rump and tail")), [
            "tail_color"]
    if kind == "beak":
        shape = _pick(rng, _BEAK_SHAPE_WORDS[sp.beak_shape])
        noun = _pick(rng, ("beak", "bill"))
        if rng.uniform() < 0.75:
            length = _pick(rng, _BEAK_LENGTH_WORDS[sp.beak_length])
            return f"a {length} {shape} {noun}", ["bill_shape", "bill_length"]
        return f"a {shape} {noun}", ["bill_shape"]
    raise ValueError(kind)


def _join(items: list[str], rng) -> str:
    if len(items) == 1:
        return items[0]
    conj = _pick(rng, (" and ", ", and ")) if len(items) > 2 else " and "
    return ", ".join(items[:-1]) + conj + items[-1]


def _fix_articles(text: str) -> str:
    """'a orange head' -> 'an orange head': the colour words are chosen after the article."""
    import re

    return re.sub(r"\b([Aa]) (?=[aeiou])", lambda m: m.group(1) + "n ", text)


def make_caption(sp: Species, rng: np.random.Generator, which: str = "all") -> tuple[str, list[str]]:
    """One caption of ``sp`` and the attribute keys it names (sorted, without duplicates).
    ``which``: ``all`` (part colours, bill, wing pattern, size) or ``colours`` (the four part
    colours only, ``CAPTION_KINDS``)."""
    colours_only = which == "colours"
    kinds = ["crown", "wing", "underparts", "tail"] + ([] if colours_only else ["beak"])
    n = int(rng.integers(2, 5))
    chosen = [kinds[i] for i in rng.permutation(len(kinds))[:n]]
    phrases, keys = [], []
    for kind in chosen:
        p, k = _phrase("wing_colour" if colours_only and kind == "wing" else kind, sp, rng)
        phrases.append(p)
        keys += k
    with_size = not colours_only and rng.uniform() < 0.45
    size = _pick(rng, _SIZE_WORDS[sp.size]) + " " if with_size else ""
    if with_size:
        keys.append("size")
    subject = _pick(rng, (f"this {size}bird", f"the {size}bird", f"a {size}bird"))
    template = int(rng.integers(0, 5))
    if template == 0:
        text = f"{subject} has {_join(phrases, rng)}"
    elif template == 1:
        start = "a" if not subject.startswith("this") else "this"
        text = f"{start} {size}bird with {_join(phrases, rng)}"
    elif template == 2 and "wing" in chosen and len(chosen) > 1:
        i = chosen.index("wing")
        wing_phrase = phrases.pop(i)
        text = f"{subject} has {wing_phrase} and {_join(phrases, rng)}"
    elif template == 3:
        text = f"{_join(phrases, rng)} on this {size}bird"
        text = text[0].upper() + text[1:] if rng.uniform() < 0.3 else text
    else:
        text = f"{subject} has {phrases[0]}" + "".join(
            f"{_pick(rng, (', ', ' and has ', ' with '))}{p}" for p in phrases[1:])
    if rng.uniform() < 0.5:
        text += _pick(rng, (".", " ."))
    return _fix_articles(text), sorted(set(keys))


def make_captions(sp: Species, rng: np.random.Generator, n: int = 10, which: str = "all"):
    """``n`` captions and their named attribute keys."""
    pairs = [make_caption(sp, rng, which) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]
