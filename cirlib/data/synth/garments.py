"""Garments for synth-fashioniq: an attribute record and a Pillow renderer.

A garment's identity is its category and six attributes (colour, pattern, sleeves, length,
neckline, graphic); everything else in the picture (aspect ratio, scale, position, tilt,
background tint, lighting, pixel noise) is nuisance drawn from the per-image random stream.
Geometry is written in unit coordinates (x and y in [0, 1] of the canvas) and scaled at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from cirlib.data.synth.draw import add_noise, colour_rgb, contrast_colour, draw_shape, jitter_colour
from cirlib.data.synth.vocab import GARMENT_ATTRIBUTES, GARMENT_CATEGORIES, GARMENT_VALUES

HEIGHT = 128


@dataclass(frozen=True)
class Garment:
    """A garment's identity: category plus one value per attribute in GARMENT_ATTRIBUTES order."""

    category: str
    colour: str
    pattern: str
    sleeves: str
    length: str
    neckline: str
    graphic: str

    @property
    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in GARMENT_ATTRIBUTES}

    def key(self) -> tuple[str, ...]:
        return (self.category, *(getattr(self, name) for name in GARMENT_ATTRIBUTES))

    def replace(self, **changes: str) -> "Garment":
        return Garment(**{**self.__dict__, **changes})

    def to_json(self) -> dict[str, str]:
        return {"category": self.category, **self.attributes}


def garment_from_codes(category: str, codes: np.ndarray) -> Garment:
    """Build a garment from integer value codes, one per attribute."""
    values = {name: GARMENT_VALUES[name][int(code)] for name, code in zip(GARMENT_ATTRIBUTES, codes)}
    return Garment(category=category, **values)


def garment_codes(garment: Garment) -> list[int]:
    return [GARMENT_VALUES[name].index(getattr(garment, name)) for name in GARMENT_ATTRIBUTES]


def random_garment(category: str, rng: np.random.Generator) -> Garment:
    codes = [rng.integers(len(GARMENT_VALUES[name])) for name in GARMENT_ATTRIBUTES]
    return garment_from_codes(category, np.asarray(codes))


# Hem height by category and length value (unit y).
_HEM = {"dress": {"short": 0.62, "regular": 0.76, "long": 0.93},
        "shirt": {"short": 0.47, "regular": 0.62, "long": 0.76},
        "toptee": {"short": 0.47, "regular": 0.62, "long": 0.76}}
_SHOULDER_Y = 0.2
_SHOULDERS = (0.3, 0.7)


def _body_polygon(g: Garment) -> list[tuple[float, float]]:
    hem = _HEM[g.category][g.length]
    left, right = _SHOULDERS
    if g.category == "dress":
        flare = 0.2 + 0.08 * (hem - 0.6) / 0.33
        return [(left, _SHOULDER_Y), (right, _SHOULDER_Y), (0.64, 0.44), (0.5 + flare + 0.06, hem),
                (0.5 - flare - 0.06, hem), (0.36, 0.44)]
    flare = 0.02 if g.category == "toptee" else 0.0
    return [(left, _SHOULDER_Y), (right, _SHOULDER_Y), (right + flare, hem), (left - flare, hem)]


def _sleeve_polygons(g: Garment) -> list[list[tuple[float, float]]]:
    if g.sleeves == "sleeveless":
        return []
    reach_y, reach_x = (0.34, 0.17) if g.sleeves == "short" else (0.6, 0.14)
    left = [(0.3, _SHOULDER_Y), (0.3, 0.3 if g.sleeves == "short" else 0.32), (reach_x + 0.08, reach_y + 0.02),
            (reach_x, reach_y)]
    right = [(1 - x, y) for x, y in left]
    return [left, right]


def render_garment(g: Garment, rng: np.random.Generator) -> Image.Image:
    """Draw the garment with fresh nuisance from ``rng`` (same rng state, same pixels)."""
    width = int(rng.integers(92, 113))
    scale = float(rng.uniform(0.88, 1.05))
    dx, dy = rng.uniform(-0.05, 0.05), rng.uniform(-0.03, 0.03)
    background = jitter_colour((240, 238, 234), rng, 14)

    def px(point: tuple[float, float]) -> tuple[float, float]:
        x, y = point
        return ((0.5 + (x - 0.5) * scale + dx) * width, (0.5 + (y - 0.5) * scale + dy) * HEIGHT)

    main = jitter_colour(colour_rgb(g.colour), rng, 12)
    accent = contrast_colour(g.colour)
    outline = (70, 70, 75) if g.colour != "black" else (110, 110, 115)

    mask = Image.new("L", (width, HEIGHT), 0)
    mask_draw = ImageDraw.Draw(mask)
    polygons = [_body_polygon(g), *_sleeve_polygons(g)]
    for polygon in polygons:
        mask_draw.polygon([px(p) for p in polygon], fill=255)

    neck_cx, neck_cy = px((0.5, _SHOULDER_Y))
    neck_w = 0.09 * scale * width
    if g.neckline == "round":
        mask_draw.ellipse((neck_cx - neck_w, neck_cy - neck_w * 0.8, neck_cx + neck_w, neck_cy + neck_w * 0.8), fill=0)
    elif g.neckline == "v-neck":
        mask_draw.polygon([(neck_cx - neck_w, neck_cy - 1), (neck_cx + neck_w, neck_cy - 1),
                           (neck_cx, neck_cy + 0.11 * scale * HEIGHT)], fill=0)

    texture = Image.new("RGB", (width, HEIGHT), main)
    tex_draw = ImageDraw.Draw(texture)
    period = 6
    if g.pattern == "striped":
        for y in range(int(rng.integers(0, period)), HEIGHT, period):
            tex_draw.rectangle((0, y, width, y + 1), fill=accent)
    elif g.pattern == "dotted":
        for y in range(2, HEIGHT, period):
            for x in range(2 + (y // period % 2) * 3, width, period):
                tex_draw.ellipse((x - 1.3, y - 1.3, x + 1.3, y + 1.3), fill=accent)
    elif g.pattern == "checked":
        for v in range(0, max(width, HEIGHT), period + 1):
            tex_draw.line((v, 0, v, HEIGHT), fill=accent, width=1)
            tex_draw.line((0, v, width, v), fill=accent, width=1)

    canvas = Image.new("RGB", (width, HEIGHT), background)
    canvas.paste(texture, (0, 0), mask)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        draw.polygon([px(p) for p in polygon], outline=outline)
    if g.category == "shirt":
        top = neck_cy + (0.11 * scale * HEIGHT if g.neckline == "v-neck" else neck_w * 0.8)
        draw.line((neck_cx, top, neck_cx, px((0.5, _HEM["shirt"][g.length]))[1]), fill=outline, width=1)
    if g.neckline == "collar":
        flap = 0.075 * scale * width
        collar_fill = (250, 250, 250) if g.colour != "white" else (200, 200, 205)
        for side in (-1, 1):
            draw.polygon([(neck_cx, neck_cy + flap * 0.9), (neck_cx + side * flap * 1.4, neck_cy - 1),
                          (neck_cx + side * flap * 1.2, neck_cy + flap * 1.1)], fill=collar_fill, outline=outline)
    if g.graphic != "none":
        gx, gy = px((0.5, 0.34))
        graphic_fill = (250, 215, 40) if g.colour not in ("yellow", "orange") else (30, 60, 190)
        draw_shape(draw, g.graphic, gx, gy, 5.5 * scale, fill=graphic_fill, outline=(20, 20, 20))

    angle = float(rng.uniform(-4, 4))
    canvas = canvas.rotate(angle, resample=Image.BICUBIC, fillcolor=background)
    return add_noise(canvas, rng, sigma=3.0)


__all__ = ["Garment", "GARMENT_CATEGORIES", "garment_codes", "garment_from_codes", "random_garment", "render_garment"]
