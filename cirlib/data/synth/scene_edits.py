"""Edits on scenes: what an edit means (its realisations) and how it is said (its caption).

An edit names its object by a description (some of shape, colour, size, cell) that must match
exactly one object of the scene it is applied to. An edit may leave attributes free ("add a red
circle" says nothing of size or place): ``realisations`` returns every scene that satisfies it,
which is how CIRR's target_soft and CIRCO's gt_img_ids are computed rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from cirlib.data.synth.garment_text import pick
from cirlib.data.synth.scenes import MAX_OBJECTS, N_CELLS, Scene, SceneObject
from cirlib.data.synth.vocab import (
    BACKGROUNDS,
    CELL_WORDS,
    COLOURS,
    COUNT_WORDS,
    OBJECT_COLOURS,
    ROW_WORDS,
    SHAPE_PLURALS,
    SHAPES,
    SIZES,
)

EDIT_KINDS = ("add", "remove", "recolour", "reshape", "resize", "move", "count", "background")
_OBJECT_FIELDS = ("shape", "colour", "size", "cell")


@dataclass(frozen=True)
class Edit:
    """One edit. ``target`` describes the object acted on; ``value`` the new attribute values.

    kind       target            value
    add        -                 shape, colour, [size], [cell]   (missing keys are free)
    remove     description       -
    recolour   description       colour
    reshape    description       shape
    resize     description       size
    move       description       cell, or row (any empty cell of that row)
    count      shape, colour     delta (+1 adds a copy anywhere, -1 removes any one copy)
    background -                 background
    """

    kind: str
    target: dict = field(default_factory=dict)
    value: dict = field(default_factory=dict)


def matches(obj: SceneObject, description: dict) -> bool:
    return all(getattr(obj, k) == v for k, v in description.items())


def _the_object(scene: Scene, description: dict) -> SceneObject | None:
    found = [o for o in scene.objects if matches(o, description)]
    return found[0] if len(found) == 1 else None


def realisations(scene: Scene, edit: Edit) -> list[Scene]:
    """Every scene that the edit allows from ``scene`` (empty if the edit does not apply)."""
    objects = list(scene.objects)
    if edit.kind == "background":
        new = edit.value["background"]
        return [] if new == scene.background else [Scene.of(new, objects)]
    if edit.kind == "count" and edit.value["delta"] < 0:
        copies = [o for o in objects if matches(o, edit.target)]
        return [Scene.of(scene.background, [o for o in objects if o != c]) for c in copies] if len(copies) > 1 else []
    if edit.kind in ("add", "count"):
        if len(objects) >= MAX_OBJECTS:
            return []
        if edit.kind == "count" and not any(matches(o, edit.target) for o in objects):
            return []
        spec = edit.target if edit.kind == "count" else edit.value
        sizes = [spec["size"]] if "size" in spec else list(SIZES)
        cells = [spec["cell"]] if "cell" in spec else scene.empty_cells()
        return [Scene.of(scene.background, objects + [SceneObject(cell, spec["shape"], spec["colour"], size)])
                for size, cell in product(sizes, cells) if cell in scene.empty_cells()]
    obj = _the_object(scene, edit.target)
    if obj is None:
        return []
    rest = [o for o in objects if o != obj]
    if edit.kind == "remove":
        return [Scene.of(scene.background, rest)] if rest else []
    if edit.kind in ("recolour", "reshape", "resize"):
        attr = {"recolour": "colour", "reshape": "shape", "resize": "size"}[edit.kind]
        new = edit.value[attr]
        if getattr(obj, attr) == new:
            return []
        return [Scene.of(scene.background, rest + [SceneObject(**{**obj.__dict__, attr: new})])]
    if edit.kind == "move":
        cells = ([edit.value["cell"]] if "cell" in edit.value
                 else [edit.value["row"] * 3 + c for c in range(3)])
        free = set(scene.empty_cells())
        return [Scene.of(scene.background, rest + [SceneObject(**{**obj.__dict__, "cell": c})]) for c in cells if c in free]
    raise ValueError(f"unknown edit kind {edit.kind!r}")


def apply_chain(scene: Scene, edits: list[Edit]) -> list[Scene]:
    """Realisations of several edits applied in turn (a compound caption)."""
    scenes = [scene]
    for edit in edits:
        scenes = [r for s in scenes for r in realisations(s, edit)]
    unique = {s.key(): s for s in scenes}
    return [unique[k] for k in sorted(unique, key=repr)]


# --- describing objects ----------------------------------------------------------------------
def unique_description(scene: Scene, obj: SceneObject, rng: np.random.Generator) -> dict:
    """A description that picks out ``obj`` alone: the shortest that works, sometimes a longer one."""
    candidates = [{"shape": obj.shape}, {"colour": obj.colour, "shape": obj.shape},
                  {"size": obj.size, "colour": obj.colour, "shape": obj.shape}, {"cell": obj.cell}]
    unique = [d for d in candidates if _the_object(scene, d) == obj]
    if len(unique) > 1 and rng.random() < 0.3:
        return unique[int(rng.integers(1, len(unique)))]
    return unique[0]


def _describe(description: dict, rng: np.random.Generator) -> str:
    if set(description) == {"cell"}:
        return f"the {pick(rng, ('object', 'shape', 'thing'))} in the {pick(rng, CELL_WORDS[description['cell']])}"
    words = []
    if "size" in description:
        words.append(pick(rng, SIZES[description["size"]]))
    if "colour" in description:
        words.append(pick(rng, COLOURS[description["colour"]][1]))
    words.append(pick(rng, SHAPES[description["shape"]]))
    return "the " + " ".join(words)


def _object_phrase(spec: dict, rng: np.random.Generator, article: str = "a") -> str:
    words = [pick(rng, SIZES[spec["size"]])] if "size" in spec else []
    words += [pick(rng, COLOURS[spec["colour"]][1]), pick(rng, SHAPES[spec["shape"]])]
    return f"{article} {' '.join(words)}"


def edit_caption(scene: Scene, edit: Edit, rng: np.random.Generator) -> str:
    """A CIRR-style imperative or descriptive caption for the edit applied to ``scene``."""
    v = edit.value
    if edit.kind == "add":
        phrase = _object_phrase(v, rng)
        where = f" in the {pick(rng, CELL_WORDS[v['cell']])}" if "cell" in v else ""
        return pick(rng, (f"add {phrase}{where}", f"put {phrase}{where}", f"there is also {phrase}{where}"))
    if edit.kind == "background":
        bg = pick(rng, BACKGROUNDS[v["background"]][1])
        return pick(rng, (f"change the background to {bg}", f"make the background {bg}", f"on a {bg} background instead"))
    if edit.kind == "count":
        n = sum(matches(o, edit.target) for o in scene.objects)
        shape = pick(rng, SHAPES[edit.target["shape"]])
        colour = pick(rng, COLOURS[edit.target["colour"]][1])
        plural = SHAPE_PLURALS.get(shape, shape + "s")
        new = n + v["delta"]
        noun = f"{colour} {plural}" if new != 1 else f"{colour} {shape}"
        options = [f"has {COUNT_WORDS[new]} {noun} instead of {COUNT_WORDS[n]}"]
        options.append(f"add another {colour} {shape}" if v["delta"] > 0 else f"keep only {COUNT_WORDS[new]} {noun}")
        return pick(rng, options)
    the = _describe(edit.target, rng)
    if edit.kind == "remove":
        return pick(rng, (f"remove {the}", f"take away {the}", f"get rid of {the}", f"without {the}"))
    if edit.kind == "recolour":
        colour = pick(rng, COLOURS[v["colour"]][1])
        return pick(rng, (f"make {the} {colour}", f"change {the} to {colour}", f"{the} is {colour} now"))
    if edit.kind == "reshape":
        obj = _the_object(scene, edit.target)
        new = {"shape": v["shape"], "colour": obj.colour}
        return pick(rng, (f"replace {the} with {_object_phrase(new, rng)}", f"turn {the} into a {pick(rng, SHAPES[v['shape']])}"))
    if edit.kind == "resize":
        bigger = v["size"] == "large"
        return pick(rng, (f"make {the} {'bigger' if bigger else 'smaller'}", f"{the} is {pick(rng, SIZES[v['size']])} now"))
    if edit.kind == "move":
        place = (pick(rng, CELL_WORDS[v["cell"]]) if "cell" in v else pick(rng, ROW_WORDS[v["row"]]))
        return pick(rng, (f"move {the} to the {place}", f"put {the} in the {place} instead"))
    raise ValueError(f"unknown edit kind {edit.kind!r}")


def chain_caption(scenes: list[Scene], edits: list[Edit], rng: np.random.Generator) -> str:
    """One caption for several edits: edit i is described against ``scenes[i]``, the scene it edits."""
    return " and ".join(edit_caption(scene, edit, rng) for scene, edit in zip(scenes, edits))


# --- sampling edits --------------------------------------------------------------------------
def sample_edit(scene: Scene, rng: np.random.Generator, kinds=EDIT_KINDS, free_probability: float = 0.0) -> Edit | None:
    """A random applicable edit of one of ``kinds``; with ``free_probability`` it leaves attributes free."""
    for _ in range(20):
        kind = str(rng.choice(kinds))
        edit = _sample_kind(scene, kind, rng, rng.random() < free_probability)
        if edit is not None and realisations(scene, edit):
            return edit
    return None


def _sample_kind(scene: Scene, kind: str, rng: np.random.Generator, free: bool) -> Edit | None:
    objects = scene.objects
    if kind == "background":
        return Edit("background", value={"background": str(rng.choice([b for b in BACKGROUNDS if b != scene.background]))})
    if kind == "add":
        if len(objects) >= MAX_OBJECTS:
            return None
        value = {"shape": str(rng.choice(list(SHAPES))), "colour": str(rng.choice(OBJECT_COLOURS)),
                 "size": str(rng.choice(list(SIZES))), "cell": int(rng.choice(scene.empty_cells()))}
        if free:
            for key in rng.choice(["size", "cell"], size=int(rng.integers(1, 3)), replace=False):
                del value[str(key)]
        return Edit("add", value=value)
    if kind == "count":
        groups = {}
        for o in objects:
            groups.setdefault((o.shape, o.colour), []).append(o)
        (shape, colour), copies = list(groups.items())[int(rng.integers(len(groups)))]
        delta = -1 if len(copies) >= 2 and rng.random() < 0.5 else 1
        return Edit("count", target={"shape": shape, "colour": colour}, value={"delta": delta})
    if not objects:
        return None
    obj = objects[int(rng.integers(len(objects)))]
    target = unique_description(scene, obj, rng)
    if kind == "remove":
        return Edit("remove", target=target) if len(objects) > 1 else None
    if kind == "recolour":
        return Edit("recolour", target, {"colour": str(rng.choice([c for c in OBJECT_COLOURS if c != obj.colour]))})
    if kind == "reshape":
        return Edit("reshape", target, {"shape": str(rng.choice([s for s in SHAPES if s != obj.shape]))})
    if kind == "resize":
        return Edit("resize", target, {"size": "small" if obj.size == "large" else "large"})
    if kind == "move":
        empty = scene.empty_cells()
        if free:
            rows = sorted({c // 3 for c in empty if c // 3 != obj.cell // 3})
            return Edit("move", target, {"row": int(rng.choice(rows))}) if rows else None
        return Edit("move", target, {"cell": int(rng.choice(empty))}) if empty else None
    raise ValueError(f"unknown edit kind {kind!r}")


def edit_between(a: Scene, b: Scene, rng: np.random.Generator) -> Edit | None:
    """A single edit that turns ``a`` into ``b`` exactly, if one exists (else None)."""
    if a.objects == b.objects:
        return Edit("background", value={"background": b.background}) if a.background != b.background else None
    if a.background != b.background:
        return None
    only_a, only_b = set(a.objects) - set(b.objects), set(b.objects) - set(a.objects)
    if not only_a and len(only_b) == 1:
        (new,) = only_b
        if any(o.shape == new.shape and o.colour == new.colour for o in a.objects) and rng.random() < 0.5:
            return Edit("count", target={"shape": new.shape, "colour": new.colour}, value={"delta": 1})
        return Edit("add", value={"shape": new.shape, "colour": new.colour, "size": new.size, "cell": new.cell})
    if len(only_a) == 1 and not only_b:
        (gone,) = only_a
        if sum(o.shape == gone.shape and o.colour == gone.colour for o in a.objects) > 1 and rng.random() < 0.5:
            return Edit("count", target={"shape": gone.shape, "colour": gone.colour}, value={"delta": -1})
        return Edit("remove", target=unique_description(a, gone, rng))
    if len(only_a) == 1 and len(only_b) == 1:
        (old,), (new,) = only_a, only_b
        differing = [f for f in _OBJECT_FIELDS if getattr(old, f) != getattr(new, f)]
        if len(differing) != 1:
            return None
        attr = differing[0]
        kind = {"colour": "recolour", "shape": "reshape", "size": "resize", "cell": "move"}[attr]
        return Edit(kind, unique_description(a, old, rng), {attr: getattr(new, attr)})
    return None


def loosen(edit: Edit, rng: np.random.Generator, probability: float) -> Edit:
    """The same edit with some attributes left free (a vaguer caption), with ``probability``."""
    if rng.random() >= probability:
        return edit
    if edit.kind == "add":
        drop = str(rng.choice(["size", "cell"]))
        return Edit("add", value={k: v for k, v in edit.value.items() if k != drop})
    if edit.kind == "move" and "cell" in edit.value:
        return Edit("move", edit.target, {"row": edit.value["cell"] // 3})
    return edit


def edit_to_json(edit: Edit) -> dict:
    return {"kind": edit.kind, "target": edit.target, "value": edit.value}


def edit_from_json(data: dict) -> Edit:
    return Edit(data["kind"], dict(data["target"]), dict(data["value"]))


__all__ = ["EDIT_KINDS", "Edit", "N_CELLS", "apply_chain", "chain_caption", "edit_between", "edit_caption",
           "edit_from_json", "edit_to_json", "loosen", "realisations", "sample_edit"]
