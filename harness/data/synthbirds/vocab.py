"""The attribute vocabulary of synthbirds, drawn from CUB's, and the 200 species built from it.

A species is a fixed combination of attributes; every image of a species shows all of them, so
a caption that names any subset of them is true of the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# RGB of each colour name. "iridescent" is rendered as a teal-violet sheen, not one colour.
COLOURS: dict[str, tuple[int, int, int]] = {
    "blue": (38, 88, 205),
    "brown": (115, 75, 42),
    "iridescent": (40, 140, 160),
    "purple": (112, 48, 150),
    "rufous": (172, 72, 30),
    "grey": (128, 128, 132),
    "yellow": (238, 206, 40),
    "olive": (118, 124, 48),
    "green": (48, 150, 62),
    "pink": (236, 140, 172),
    "orange": (242, 130, 28),
    "black": (24, 24, 26),
    "white": (242, 242, 236),
    "red": (202, 30, 36),
    "buff": (222, 192, 142),
}
IRIDESCENT_SHEEN = [(30, 150, 150), (40, 90, 190), (110, 60, 180), (40, 160, 110)]

# The miniature's palette (SynthOptions.palette="salient"): eight colours far apart in RGB and
# in name, so that a 32-pixel bird shows which one a caption names.
SALIENT_PALETTE = ("red", "yellow", "blue", "green", "black", "white", "orange", "purple")
PALETTES = {"full": tuple(COLOURS), "salient": SALIENT_PALETTE}

PARTS = ("crown", "wing", "underparts", "tail")
WING_PATTERNS = ("solid", "striped", "spotted", "multicoloured")
BEAK_SHAPES = ("cone", "pointed", "hooked", "needle")
BEAK_LENGTHS = ("short", "long")
BODY_SIZES = ("small", "medium", "large")

_NOUN_BY_BEAK = {
    "cone": ("Finch", "Grosbeak", "Bunting", "Seedeater", "Sparrow"),
    "pointed": ("Warbler", "Vireo", "Tanager", "Wren", "Flycatcher"),
    "hooked": ("Shrike", "Kestrel", "Kite", "Butcherbird", "Falconet"),
    "needle": ("Sunbird", "Hummingbird", "Honeyeater", "Spiderhunter", "Sicklebill"),
}


@dataclass(frozen=True)
class Species:
    class_id: int  # 1-based, as in CUB's classes.txt
    name: str  # e.g. "Rufous_Crowned_Finch"
    crown: str
    wing: str
    underparts: str
    tail: str
    wing_pattern: str
    wing_accent: str  # colour of stripes/spots/bands, derived from the wing colour
    beak_shape: str
    beak_length: str
    size: str

    @property
    def class_dir(self) -> str:
        return f"{self.class_id:03d}.{self.name}"

    def attributes(self) -> dict[str, str]:
        """The attribute name -> value mapping an image of this species shows."""
        return {
            "crown_color": self.crown,
            "wing_color": self.wing,
            "underparts_color": self.underparts,
            "tail_color": self.tail,
            "wing_pattern": self.wing_pattern,
            "bill_shape": self.beak_shape,
            "bill_length": self.beak_length,
            "size": self.size,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def attribute_list() -> list[str]:
    """Every attribute as CUB spells them (``has_<kind>::<value>``), in a fixed order."""
    names = []
    for part in PARTS:
        kind = "underparts_color" if part == "underparts" else f"{part}_color"
        names += [f"has_{kind}::{c}" for c in COLOURS]
    names += [f"has_wing_pattern::{p}" for p in WING_PATTERNS]
    names += [f"has_bill_shape::{s}" for s in BEAK_SHAPES]
    names += [f"has_bill_length::{s}" for s in BEAK_LENGTHS]
    names += [f"has_size::{s}" for s in BODY_SIZES]
    return names


def attribute_ids(attrs: dict[str, str]) -> list[int]:
    """1-based ids (into ``attribute_list()``) of an attribute mapping."""
    index = {name: i + 1 for i, name in enumerate(attribute_list())}
    return sorted(index[f"has_{k}::{v}"] for k, v in attrs.items())


def _accent_for(wing: str) -> str:
    dark = sum(COLOURS[wing]) < 330
    return "white" if dark else "black"


def _luma(colour: str) -> float:
    r, g, b = COLOURS[colour]
    return 0.299 * r + 0.587 * g + 0.114 * b


def make_species(n_classes: int, seed: int, palette: str = "full") -> list[Species]:
    """Draw ``n_classes`` distinct species deterministically from ``seed``, their part colours
    from ``palette`` (``PALETTES``)."""
    if not 1 <= n_classes <= 999:
        raise ValueError("the number of classes must be between 1 and 999")
    rng = np.random.default_rng([seed, 0x5B12D])
    colours = list(PALETTES[palette])
    seen: set[tuple] = set()
    used_names: set[str] = set()
    species: list[Species] = []
    while len(species) < n_classes:
        crown, wing, under, tail = (colours[i] for i in rng.integers(0, len(colours), 4))
        # A bird whose underparts match its wings in brightness shows no visible boundary.
        if abs(_luma(wing) - _luma(under)) < 25 or crown == wing == tail:
            continue
        pattern = WING_PATTERNS[rng.integers(0, len(WING_PATTERNS))]
        beak = BEAK_SHAPES[rng.integers(0, len(BEAK_SHAPES))]
        length = BEAK_LENGTHS[rng.integers(0, len(BEAK_LENGTHS))]
        size = BODY_SIZES[rng.integers(0, len(BODY_SIZES))]
        key = (crown, wing, under, tail, pattern, beak, length, size)
        if key in seen:
            continue
        seen.add(key)
        nouns = _NOUN_BY_BEAK[beak]
        noun = nouns[int(rng.integers(0, len(nouns)))]
        candidates = [
            f"{crown.title()}_Crowned_{noun}",
            f"{under.title()}_Breasted_{noun}",
            f"{wing.title()}_Winged_{noun}",
            f"{tail.title()}_Tailed_{noun}",
            f"{size.title()}_{crown.title()}_Crowned_{noun}",
        ]
        name = next((c for c in candidates if c not in used_names), None)
        suffix = 2
        while name is None:
            name = f"{candidates[0]}_{suffix}" if f"{candidates[0]}_{suffix}" not in used_names else None
            suffix += 1
        used_names.add(name)
        species.append(
            Species(
                class_id=len(species) + 1,
                name=name,
                crown=crown,
                wing=wing,
                underparts=under,
                tail=tail,
                wing_pattern=pattern,
                wing_accent=_accent_for(wing),
                beak_shape=beak,
                beak_length=length,
                size=size,
            )
        )
    return species
