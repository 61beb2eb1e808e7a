"""Scenes for synth-cirr and synth-circo: 1-4 shapes on a 3x3 grid over a background.

A scene's identity is its background and its set of objects (shape, colour, size, grid cell);
at most one object per cell. Position jitter inside the cell, tilt, lighting and pixel noise are
nuisance drawn from the per-image random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from cirlib.data.synth.draw import add_noise, colour_rgb, draw_shape, jitter_colour
from cirlib.data.synth.vocab import BACKGROUNDS, OBJECT_COLOURS, SHAPES, SIZES

MAX_OBJECTS = 4
N_CELLS = 9


@dataclass(frozen=True, order=True)
class SceneObject:
    cell: int
    shape: str
    colour: str
    size: str

    def to_json(self) -> dict:
        return {"cell": self.cell, "shape": self.shape, "colour": self.colour, "size": self.size}


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[SceneObject, ...]  # sorted by cell, so equal scenes compare equal

    @staticmethod
    def of(background: str, objects) -> "Scene":
        objects = tuple(sorted(objects))
        cells = [o.cell for o in objects]
        if len(set(cells)) != len(cells):
            raise ValueError("two objects in one grid cell")
        return Scene(background, objects)

    def key(self) -> tuple:
        return (self.background, self.objects)

    def empty_cells(self) -> list[int]:
        used = {o.cell for o in self.objects}
        return [c for c in range(N_CELLS) if c not in used]

    def to_json(self) -> dict:
        return {"background": self.background, "objects": [o.to_json() for o in self.objects]}


def random_object(rng: np.random.Generator, cell: int) -> SceneObject:
    return SceneObject(cell=cell, shape=str(rng.choice(list(SHAPES))), colour=str(rng.choice(OBJECT_COLOURS)),
                       size=str(rng.choice(list(SIZES))))


def random_scene(rng: np.random.Generator, min_objects: int = 1, max_objects: int = 3) -> Scene:
    n = int(rng.integers(min_objects, max_objects + 1))
    cells = rng.choice(N_CELLS, size=n, replace=False)
    return Scene.of(str(rng.choice(list(BACKGROUNDS))), [random_object(rng, int(c)) for c in cells])


def scene_facts(scene: Scene) -> list[tuple]:
    """The scene as a bag of facts, from coarse ("has a red object") to exact (the whole object).

    Attribute agreement between two scenes is the overlap of their fact bags; it is graded (a
    recoloured object still shares its shape, size and cell facts) and equals 1 only for equal scenes.
    """
    facts: list[tuple] = [("background", scene.background), ("count", len(scene.objects))]
    for o in scene.objects:
        facts += [("object", o.cell, o.shape, o.colour, o.size), ("shape", o.shape), ("colour", o.colour),
                  ("size", o.size), ("cell", o.cell), ("shape-colour", o.shape, o.colour)]
    return facts


def render_scene(scene: Scene, rng: np.random.Generator, width: int = 128, height: int = 96) -> Image.Image:
    """Draw the scene with fresh nuisance from ``rng``."""
    background = jitter_colour(BACKGROUNDS[scene.background][0], rng, 10)
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    # A faint ground band gives the background some structure, as photographs have.
    band = jitter_colour(background, rng, 18)
    band_top = int(height * rng.uniform(0.65, 0.8))
    draw.rectangle((0, band_top, width, height), fill=band)
    cell_w, cell_h = width / 3, height / 3
    outline = (20, 20, 20) if scene.background != "night" else (230, 230, 230)
    for o in scene.objects:
        row, col = divmod(o.cell, 3)
        cx = (col + 0.5) * cell_w + rng.uniform(-0.12, 0.12) * cell_w
        cy = (row + 0.5) * cell_h + rng.uniform(-0.1, 0.1) * cell_h
        radius = (0.36 if o.size == "large" else 0.2) * cell_h * rng.uniform(0.92, 1.08)
        fill = jitter_colour(colour_rgb(o.colour), rng, 12)
        draw_shape(draw, o.shape, cx, cy, radius, fill=fill, outline=outline, rotation=rng.uniform(-0.12, 0.12))
    return add_noise(canvas, rng, sigma=3.0)


def scene_from_json(data: dict) -> Scene:
    return Scene.of(data["background"], [SceneObject(**o) for o in data["objects"]])
