"""Renders one synthbirds image with PIL.

The bird is built as polygons in its own frame (facing right, body centred at the origin, body
length about 2 units), then one affine map places it (scale, tilt, mirror, position). Drawing
happens at twice the output size and is downsampled with a Lanczos filter, which anti-aliases
the edges; the bounding box and the 15 CUB part locations come from the same affine map, so
they agree with the pixels exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from harness.data.synthbirds.vocab import COLOURS, IRIDESCENT_SHEEN, Species

SUPERSAMPLE = 2
BACKGROUNDS = ("sky", "foliage", "water", "branch", "meadow")
# CUB's parts/parts.txt, in its order (ids 1..15).
CUB_PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
             "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat")

Point = tuple[float, float]


@dataclass
class Rendered:
    image: Image.Image
    bbox: tuple[float, float, float, float]  # x, y, w, h in output pixels, clipped to the image
    parts: list[tuple[float, float, int]]  # (x, y, visible) per CUB part, in output pixels
    background: str
    facing: str


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0,
             t0: float = 0.0, t1: float = 2 * math.pi, n: int = 40) -> list[Point]:
    ca, sa = math.cos(angle), math.sin(angle)
    pts = []
    for i in range(n + 1):
        t = t0 + (t1 - t0) * i / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return pts


def _band(cx, cy, rx, ry, angle, u0, u1, n=12) -> list[Point]:
    """The part of an ellipse between u0 and u1 along its major axis (u in [-1, 1])."""
    ca, sa = math.cos(angle), math.sin(angle)
    top, bottom = [], []
    for i in range(n + 1):
        u = u0 + (u1 - u0) * i / n
        half = ry * math.sqrt(max(0.0, 1 - u * u))
        x = rx * u
        top.append((cx + x * ca + half * sa, cy + x * sa - half * ca))
        bottom.append((cx + x * ca - half * sa, cy + x * sa + half * ca))
    return top + bottom[::-1]


def _shades(colour: str, n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """n fill colours for the bands of one part: a light-to-dark shading, or a sheen."""
    if colour == "iridescent":
        offset = int(rng.integers(0, len(IRIDESCENT_SHEEN)))
        return [IRIDESCENT_SHEEN[(offset + i) % len(IRIDESCENT_SHEEN)] for i in range(n)]
    base = np.array(COLOURS[colour], dtype=float)
    out = []
    for i in range(n):
        f = 1.12 - 0.25 * i / max(1, n - 1)
        out.append(tuple(int(v) for v in np.clip(base * f, 0, 255)))
    return out


class _Canvas:
    """Draws bird-frame polygons through the placement transform."""

    def __init__(self, draw: ImageDraw.ImageDraw, scale: float, angle: float, mirror: bool,
                 origin: Point):
        self.draw = draw
        self.scale, self.mirror, self.origin = scale, mirror, origin
        self.ca, self.sa = math.cos(angle), math.sin(angle)
        self.points: list[Point] = []

    def map(self, p: Point) -> Point:
        x, y = p
        if self.mirror:
            x = -x
        xr, yr = x * self.ca - y * self.sa, x * self.sa + y * self.ca
        return (self.origin[0] + self.scale * xr, self.origin[1] + self.scale * yr)

    def polygon(self, pts: list[Point], fill, track: bool = True) -> None:
        mapped = [self.map(p) for p in pts]
        if track:
            self.points.extend(mapped)
        self.draw.polygon(mapped, fill=fill)

    def line(self, pts: list[Point], fill, width_units: float) -> None:
        mapped = [self.map(p) for p in pts]
        self.points.extend(mapped)
        self.draw.line(mapped, fill=fill, width=max(1, int(round(width_units * self.scale))),
                       joint="curve")


def _background(kind: str, size: int, rng: np.random.Generator) -> tuple[Image.Image, Point | None]:
    """A background and, for perches, a point on the perch the bird can stand on."""
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    ys = np.linspace(0, 1, size)[:, None]

    def vertical_gradient(top, bottom):
        top, bottom = np.array(top, float), np.array(bottom, float)
        rows = top * (1 - ys) + bottom * ys
        arr = np.repeat(rows[:, None, :], size, axis=1)
        return Image.fromarray(arr.astype(np.uint8))

    perch = None
    if kind == "plain":  # the miniature's scene: a pale, nearly uniform backdrop
        tint = rng.integers(170, 215, 3)
        img = vertical_gradient(tint + 20, tint)
    elif kind == "sky":
        img = vertical_gradient((110 + rng.integers(0, 40), 160 + rng.integers(0, 40), 230),
                                (220, 232, 245))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 5))):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size * 0.7)
            for _ in range(5):
                r = rng.uniform(0.04, 0.09) * size
                ox, oy = rng.uniform(-0.08, 0.08) * size, rng.uniform(-0.03, 0.03) * size
                draw.ellipse([cx + ox - r, cy + oy - r * 0.6, cx + ox + r, cy + oy + r * 0.6],
                             fill=(246, 248, 250))
    elif kind == "foliage":
        img = vertical_gradient((40, 90 + rng.integers(0, 30), 40), (25, 60, 30))
        draw = ImageDraw.Draw(img)
        for _ in range(120):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            r = rng.uniform(0.02, 0.06) * size
            g = int(rng.integers(70, 170))
            draw.ellipse([cx - r, cy - r * 0.5, cx + r, cy + r * 0.5],
                         fill=(int(g * 0.45), g, int(g * 0.35)))
    elif kind == "water":
        img = vertical_gradient((150, 190, 215), (40, 90, 130))
        draw = ImageDraw.Draw(img)
        for _ in range(40):
            y = rng.uniform(0.3, 1.0) * size
            x = rng.uniform(-0.2, 1.0) * size
            draw.line([(x, y), (x + rng.uniform(0.1, 0.3) * size, y)],
                      fill=(200, 225, 240), width=max(1, size // 150))
    elif kind == "branch":
        img = vertical_gradient((175, 205, 225), (200, 215, 200))
        draw = ImageDraw.Draw(img)
        y0 = rng.uniform(0.55, 0.85) * size
        y1 = y0 + rng.uniform(-0.15, 0.15) * size
        width = int(size * rng.uniform(0.025, 0.045))
        draw.line([(0, y0), (size, y1)], fill=(92, 64, 40), width=width)
        for _ in range(6):
            x = rng.uniform(0, size)
            y = y0 + (y1 - y0) * x / size
            draw.ellipse([x - size * 0.03, y - size * 0.05, x + size * 0.03, y],
                         fill=(60, 120, 50))
        px = rng.uniform(0.3, 0.7) * size
        perch = (px, y0 + (y1 - y0) * px / size - width / 2)
    else:  # meadow
        img = vertical_gradient((170, 200, 230), (215, 225, 235))
        draw = ImageDraw.Draw(img)
        horizon = rng.uniform(0.55, 0.8) * size
        draw.rectangle([0, horizon, size, size], fill=(120, 150, 60))
        for _ in range(80):
            x = rng.uniform(0, size)
            y = rng.uniform(horizon, size)
            draw.line([(x, y), (x + rng.uniform(-4, 4), y - rng.uniform(4, 12) * size / 300)],
                      fill=(80, 120 + int(rng.integers(0, 60)), 40), width=1)
        perch = (rng.uniform(0.3, 0.7) * size, rng.uniform(horizon + 0.05 * size, size * 0.95))
    return img, perch


# How big the crown cap and the tail are drawn. "salient" (the miniature): head x1.3 with the cap
# reaching down to the eye line, tail x1.5 longer and x1.4 wider; at 32 px the crown then covers
# about twice the pixels, the tail about three times (scripts/caption-diagnosis coverage).
PART_STYLES = {
    "natural": {"head": 1.0, "tail": 1.0, "tail_spread": 1.0, "crown_arc": (math.pi * 1.05, math.pi * 1.95),
                "crown_hub": 0.15},
    "salient": {"head": 1.3, "tail": 1.5, "tail_spread": 1.4, "crown_arc": (math.pi * 0.92, math.pi * 2.08),
                "crown_hub": -0.1},
}

_SIZE_SHAPE = {  # body rx, body ry, head radius, tail length, leg length
    "small": (1.0, 0.78, 0.58, 0.75, 0.45),
    "medium": (1.2, 0.72, 0.52, 1.0, 0.55),
    "large": (1.45, 0.68, 0.46, 1.3, 0.8),
}
_BEAK_WIDTH = {"cone": 0.75, "pointed": 0.42, "hooked": 0.5, "needle": 0.16}
_BEAK_LENGTH = {"short": 0.75, "long": 1.7}


def _draw_bird(cv: _Canvas, sp: Species, rng: np.random.Generator, style: dict) -> dict[str, Point]:
    """Draws the bird (``style``: one of ``PART_STYLES``) and returns its part locations in the
    bird frame."""
    rx, ry, hr, tail_len, leg_len = _SIZE_SHAPE[sp.size]
    hr *= style["head"]
    tail_len *= style["tail"]
    # Individual variation: a few percent on every proportion.
    rx *= rng.uniform(0.95, 1.05)
    ry *= rng.uniform(0.95, 1.05)
    hr *= rng.uniform(0.95, 1.05)
    tilt_body = rng.uniform(-0.15, 0.05)
    hx, hy = rx * 0.82, -ry * 0.95
    dark = (30, 26, 22)

    # Legs first, so the body covers their tops.
    foot_y = ry + leg_len
    for dx in (-0.18, 0.12):
        cv.line([(dx * rx, ry * 0.7), (dx * rx + 0.05, foot_y)], dark, 0.07)
        cv.line([(dx * rx - 0.15, foot_y), (dx * rx + 0.25, foot_y)], dark, 0.06)

    # Tail: a fan from the rump, in bands along its length.
    spread = (0.28 if sp.size != "large" else 0.22) * style["tail_spread"]
    root_top, root_bot = (-rx * 0.75, -ry * 0.25), (-rx * 0.75, ry * 0.2)
    tip = -rx * 0.75 - tail_len
    shades = _shades(sp.tail, 3, rng)
    for i in range(3):
        a, b = i / 3, (i + 1) / 3
        def at(f, top):
            y_root = root_top[1] if top else root_bot[1]
            y_tip = (-spread if top else spread + 0.15) + 0.1
            return (root_top[0] + (tip - root_top[0]) * f, y_root + (y_tip - y_root) * f)
        cv.polygon([at(a, True), at(b, True), at(b, False), at(a, False)], shades[i])

    # Body in the underparts colour, then the back/wing over its upper part.
    under = _shades(sp.underparts, 4, rng)
    for i in range(4):
        u0, u1 = -1 + i * 0.5, -1 + (i + 1) * 0.5
        # Bands run top to bottom: the band axis is vertical, so its radius is ry.
        cv.polygon(_band(0, 0, ry, rx, tilt_body + math.pi / 2, u0, u1), under[i])
    back = _shades(sp.wing, 2, rng)
    cv.polygon(_ellipse(0, -ry * 0.18, rx, ry * 0.78, tilt_body, math.pi, 2 * math.pi), back[0])

    # Wing: an ellipse over the back, patterned.
    wcx, wcy, wrx, wry, wang = -rx * 0.15, -ry * 0.12, rx * 0.78, ry * 0.45, tilt_body + 0.18
    wing_shades = _shades(sp.wing, 4, rng)
    for i in range(4):
        cv.polygon(_band(wcx, wcy, wrx, wry, wang, -1 + i * 0.5, -1 + (i + 1) * 0.5),
                   wing_shades[i])
    accent = COLOURS[sp.wing_accent]
    if sp.wing_pattern == "striped":
        for u in (-0.55, -0.2, 0.15, 0.5):
            cv.polygon(_band(wcx, wcy, wrx, wry, wang, u, u + 0.12), accent)
    elif sp.wing_pattern == "spotted":
        ca, sa = math.cos(wang), math.sin(wang)
        for _ in range(9):
            u, v = rng.uniform(-0.7, 0.7), rng.uniform(-0.55, 0.55)
            v *= math.sqrt(max(0.0, 1 - u * u))
            x, y = wrx * u, wry * v
            r = 0.07 * rx
            cv.polygon(_ellipse(wcx + x * ca - y * sa, wcy + x * sa + y * ca, r, r, n=12), accent)
    elif sp.wing_pattern == "multicoloured":
        third = tuple(int(c) for c in rng.choice(np.array([COLOURS[k] for k in (
            "red", "yellow", "blue", "white", "orange", "green") if k != sp.wing]), axis=0))
        cv.polygon(_band(wcx, wcy, wrx, wry, wang, -1.0, -0.35), accent)
        cv.polygon(_band(wcx, wcy, wrx, wry, wang, -0.35, 0.2), third)

    # Head: underparts-coloured face/throat, crown cap on top, eye.
    face = _shades(sp.underparts, 1, rng)[0]
    cv.polygon(_ellipse(hx, hy, hr, hr), face)
    crown_shades = _shades(sp.crown, 3, rng)
    t0, t1 = style["crown_arc"]
    for i in range(3):
        a = t0 + (t1 - t0) * i / 3
        b = t0 + (t1 - t0) * (i + 1) / 3
        arc = _ellipse(hx, hy, hr, hr, 0.0, a, b, n=8)
        cv.polygon([(hx, hy - hr * style["crown_hub"])] + arc, crown_shades[i])
    eye = (hx + hr * 0.35, hy - hr * 0.02)
    cv.polygon(_ellipse(eye[0], eye[1], hr * 0.2, hr * 0.2, n=16), (245, 245, 240))
    cv.polygon(_ellipse(eye[0], eye[1], hr * 0.12, hr * 0.12, n=16), (10, 10, 10))

    # Beak from the front of the head.
    length = hr * _BEAK_LENGTH[sp.beak_length]
    width = hr * _BEAK_WIDTH[sp.beak_shape]
    bx, by = hx + hr * 0.9, hy + hr * 0.15
    beak_colour = (60, 50, 40) if sp.beak_shape != "cone" else (200, 160, 90)
    if sp.beak_shape == "hooked":
        beak = [(bx - 0.05, by - width / 2), (bx + length * 0.85, by - width * 0.3),
                (bx + length, by + width * 0.1), (bx + length * 0.9, by + width * 0.55),
                (bx + length * 0.75, by + width * 0.05), (bx - 0.05, by + width / 2)]
    else:
        beak = [(bx - 0.05, by - width / 2), (bx + length, by + 0.02), (bx - 0.05, by + width / 2)]
    cv.polygon(beak, beak_colour)

    return {
        "back": (-rx * 0.2, -ry * 0.7), "beak": (bx + length * 0.6, by),
        "belly": (0.0, ry * 0.6), "breast": (rx * 0.55, ry * 0.15),
        "crown": (hx, hy - hr * 0.8), "forehead": (hx + hr * 0.6, hy - hr * 0.55),
        "left eye": eye, "left leg": (-0.18 * rx + 0.05, foot_y),
        "left wing": (wcx, wcy), "nape": (hx - hr * 0.75, hy - hr * 0.2),
        "right eye": eye, "right leg": (0.12 * rx + 0.05, foot_y),
        "right wing": (wcx, wcy), "tail": (tip * 0.9, 0.1), "throat": (hx + hr * 0.3, hy + hr * 0.8),
    }


def render_bird(species: Species, rng: np.random.Generator, size: int = 304, scene: str = "varied",
                fill_range: tuple[float, float] = (0.25, 0.8), parts: str = "natural") -> Rendered:
    """Render one image of ``species`` at ``size``×``size`` with pose, scene, light and noise.
    ``scene``: ``varied`` (sky, foliage, water, branch or meadow) or ``plain`` (a pale backdrop,
    the miniature's); ``fill_range``: the share of the frame the bird spans; ``parts``:
    ``natural`` or ``salient`` (``PART_STYLES``)."""
    big = size * SUPERSAMPLE
    background = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))] if scene == "varied" else "plain"
    img, perch = _background(background, big, rng)
    draw = ImageDraw.Draw(img)

    mirror = bool(rng.integers(0, 2))  # facing left when mirrored
    angle = rng.uniform(-0.4, 0.4)
    # The bird spans ~(2.6 + tail) units; choose a scale so it fills that share of the frame.
    fill = rng.uniform(*fill_range)
    scale = fill * big / 3.6
    if perch is not None and rng.uniform() < 0.8:
        # Stand on the perch: the feet (about 1.3 units below the body centre) touch it.
        origin = (perch[0], perch[1] - 1.3 * scale * math.cos(angle))
        angle *= 0.4
    else:
        margin = 1.2 * scale
        origin = (rng.uniform(margin, big - margin), rng.uniform(margin, big - margin))
    cv = _Canvas(draw, scale, angle, mirror, origin)
    local_parts = _draw_bird(cv, species, rng, PART_STYLES[parts])

    xs = [p[0] for p in cv.points]
    ys = [p[1] for p in cv.points]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(float(big), max(xs)), min(float(big), max(ys))

    # Lighting: overall gain and a soft directional gradient; then sensor noise.
    arr = np.asarray(img.resize((size, size), Image.LANCZOS), dtype=np.float32)
    gain = rng.uniform(0.75, 1.15)
    direction = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    light = gain * (1 + 0.15 * (np.cos(direction) * xx + np.sin(direction) * yy))
    arr = arr * light[..., None] + rng.normal(0, rng.uniform(1.5, 6.0), arr.shape)
    out = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))

    s = 1 / SUPERSAMPLE
    bbox = (x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s)
    # A bird facing right shows its right side; the far eye, wing and leg are hidden.
    hidden = {"left eye", "left wing"} if not mirror else {"right eye", "right wing"}
    parts = []
    for name in CUB_PARTS:
        px, py = cv.map(local_parts[name])
        inside = 0 <= px < big and 0 <= py < big
        visible = int(inside and name not in hidden)
        parts.append((round(px * s, 1), round(py * s, 1), visible) if visible else (0.0, 0.0, 0))
    return Rendered(out, bbox, parts, background, "left" if mirror else "right")
