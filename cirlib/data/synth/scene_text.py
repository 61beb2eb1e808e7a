"""Absolute captions of scenes, for the pretraining stream and the gallery captions."""

from __future__ import annotations

import numpy as np

from cirlib.data.synth.garment_text import pick
from cirlib.data.synth.scenes import Scene, SceneObject
from cirlib.data.synth.vocab import BACKGROUNDS, CELL_WORDS, COLOURS, OBJECT_COLOURS, SHAPES, SIZES


def _object_words(o: SceneObject, rng: np.random.Generator, with_size: bool, with_place: bool) -> str:
    words = ([pick(rng, SIZES[o.size])] if with_size else []) + [pick(rng, COLOURS[o.colour][1]), pick(rng, SHAPES[o.shape])]
    place = f" in the {pick(rng, CELL_WORDS[o.cell])}" if with_place else ""
    return "a " + " ".join(words) + place


def scene_caption(scene: Scene, rng: np.random.Generator, quality: str = "full") -> str:
    """``full`` names every object (size, colour, shape, place) and the background; ``partial``
    names some objects with fewer details; ``noisy`` drops one fact and may get a colour wrong."""
    objects = list(rng.permutation(scene.objects)) if len(scene.objects) > 1 else list(scene.objects)
    with_size = with_place = with_background = True
    if quality == "partial":
        objects = objects[: int(rng.integers(1, len(objects) + 1))]
        with_size, with_place, with_background = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
    elif quality == "noisy":
        if len(objects) > 1 and rng.random() < 0.5:
            objects = objects[:-1]
        else:
            with_place = False
        if rng.random() < 0.5:
            i = int(rng.integers(len(objects)))
            wrong = pick(rng, [c for c in OBJECT_COLOURS if c != objects[i].colour])
            objects[i] = SceneObject(objects[i].cell, objects[i].shape, wrong, objects[i].size)
    elif quality != "full":
        raise ValueError(f"unknown caption quality {quality!r}; use full, partial or noisy")
    parts = [_object_words(o, rng, with_size, with_place) for o in objects]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if with_background:
        text += f" on a {pick(rng, BACKGROUNDS[scene.background][1])} background"
    return pick(rng, ("", "a picture of ", "an image of ")) + text
