"""Small Pillow drawing helpers shared by the garment and scene renderers."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from cirlib.data.synth.vocab import COLOURS, LIGHT_COLOURS

Point = tuple[float, float]


def jitter_colour(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    """The colour with each channel moved by up to ``amount`` (lighting variation, a nuisance)."""
    shifted = np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return tuple(int(v) for v in shifted)


def contrast_colour(colour: str) -> tuple[int, int, int]:
    """Dark grey on light colours, near white on dark ones: keeps patterns and prints visible."""
    return (40, 40, 45) if colour in LIGHT_COLOURS else (240, 240, 240)


def colour_rgb(colour: str) -> tuple[int, int, int]:
    return COLOURS[colour][0]


def star_points(cx: float, cy: float, radius: float, rotation: float = 0.0) -> list[Point]:
    """Vertices of a five-pointed star."""
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.45
        angle = rotation - math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def regular_polygon(cx: float, cy: float, radius: float, sides: int, rotation: float) -> list[Point]:
    return [
        (cx + radius * math.cos(rotation + 2 * math.pi * i / sides), cy + radius * math.sin(rotation + 2 * math.pi * i / sides))
        for i in range(sides)
    ]


def heart_points(cx: float, cy: float, radius: float) -> list[Point]:
    """A heart outline sampled from the classic parametric curve."""
    pts = []
    for i in range(24):
        t = 2 * math.pi * i / 24
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((cx + radius * x / 16, cy - radius * y / 16))
    return pts


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, radius: float, fill, outline,
               rotation: float = 0.0) -> None:
    """Draw one of the scene shapes (and the garment prints) centred at (cx, cy)."""
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill, outline=outline)
    elif shape == "square":
        draw.polygon(regular_polygon(cx, cy, radius * 1.25, 4, rotation + math.pi / 4), fill=fill, outline=outline)
    elif shape == "diamond":
        draw.polygon(regular_polygon(cx, cy, radius * 1.2, 4, rotation), fill=fill, outline=outline)
    elif shape == "triangle":
        draw.polygon(regular_polygon(cx, cy + radius * 0.2, radius * 1.25, 3, rotation - math.pi / 2), fill=fill,
                     outline=outline)
    elif shape == "star":
        draw.polygon(star_points(cx, cy, radius * 1.3, rotation), fill=fill, outline=outline)
    elif shape == "heart":
        draw.polygon(heart_points(cx, cy, radius), fill=fill, outline=outline)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def add_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Gaussian pixel noise (sensor noise, a nuisance)."""
    pixels = np.asarray(image, dtype=np.int16)
    noisy = pixels + np.rint(rng.normal(0.0, sigma, size=pixels.shape)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
