"""synth-cirr: scenes in CIRR's official layout.

Images come in families: a base scene and its variants, each one edit away from the base (a
star). A family is cut into image sets of six. A query is an ordered pair inside a set: base to
variant is one edit; variant to variant is the edit that undoes the first variant's change and
the edit that makes the second's (or one edit, where one suffices). In a family of 48, a
reference has dozens of images about as close to it as its target, so the reference image alone
is a poor guide and the caption is needed. A caption may leave attributes free; every other set
member that it also allows is marked 0.5 in ``target_soft`` (the hard target is 1.0). No two
images of a split show the same scene, so the hard target is the only gallery image equal to
the edited reference.

    cirr/captions/cap.rc2.<split>.json       CIRR caption records (test1 without targets)
    cirr/image_splits/split.rc2.<split>.json {name: "./dev/<name>.png" | "./train/<k>/<name>.png" | ...}
    dev/, train/<k>/, test1/                 images
    gallery_captions/<split>.json            [{"candidate": name, "captions": [full, partial, noisy]}]
    synth_meta/scenes.json                   {name: scene}
    synth_meta/queries.<split>.json          [{"pairid", "reference", "target", "edits", "also_correct"}]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cirlib.data.synth.config import SynthConfig
from cirlib.data.synth.render import RenderJob, image_rng
from cirlib.data.synth.scene_edits import (
    apply_chain,
    chain_caption,
    edit_between,
    edit_to_json,
    loosen,
    realisations,
    sample_edit,
)
from cirlib.data.synth.scene_text import scene_caption
from cirlib.data.synth.scenes import Scene, random_scene

SET_SIZE = 6
SPLIT_FOLDERS = {"train": "train", "val": "dev", "test1": "test1"}
CAPTION_QUALITIES = ("full", "partial", "noisy")
ALTERNATIVE_PROBABILITY = 0.25   # a variant gets a sibling that a vaguer caption also allows
LOOSEN_PROBABILITY = 0.3         # a caption leaves an attribute free


def _family(size: int, taken: set, rng: np.random.Generator) -> list[Scene]:
    """A base scene and ``size - 1`` distinct one-edit variants of it, none already taken."""
    base = random_scene(rng, 1, 3)
    while base.key() in taken:
        base = random_scene(rng, 1, 3)
    members, keys = [base], {base.key()}
    for _ in range(50 * size):
        if len(members) == size:
            break
        edit = sample_edit(base, rng)
        options = [s for s in realisations(base, edit) if s.key() not in taken | keys]
        if not options:
            continue
        variant = options[int(rng.integers(len(options)))]
        members.append(variant)
        keys.add(variant.key())
        vague = loosen(edit_between(base, variant, rng), rng, probability=ALTERNATIVE_PROBABILITY)
        siblings = [s for s in realisations(base, vague) if s.key() not in taken | keys]
        if siblings and len(members) < size:
            members.append(siblings[int(rng.integers(len(siblings)))])
            keys.add(members[-1].key())
    if len(members) < size:
        return _family(size, taken, rng)
    taken |= keys
    return members


def _route(members: list[Scene], a: int, b: int) -> list[int]:
    """Family indices from ``a`` to ``b``: direct when one edit suffices, else through the base (0)."""
    if 0 in (a, b):
        return [a, b]
    probe = np.random.default_rng(0)
    return [a, b] if edit_between(members[a], members[b], probe) is not None else [a, 0, b]


def _queries(members: list[Scene], set_indices: list[int], n: int, rng: np.random.Generator):
    """Up to ``n`` (reference, target, route, edits, allowed keys) inside one image set.

    Never variant -> base (the base is every variant's nearest scene: too easy), and never a
    caption that the reference itself would satisfy (e.g. remove one copy, add one back).
    """
    pairs = [(a, b) for a in set_indices for b in set_indices if a != b and b != 0]
    rng.shuffle(pairs)
    made = 0
    for a, b in pairs:
        if made == n:
            return
        route = _route(members, a, b)
        edits = [edit_between(members[i], members[j], rng) for i, j in zip(route, route[1:])]
        edits[-1] = loosen(edits[-1], rng, probability=LOOSEN_PROBABILITY)
        allowed = {s.key() for s in apply_chain(members[a], edits)}
        assert members[b].key() in allowed, "a caption must allow its own target"
        if members[a].key() not in allowed:
            made += 1
            yield a, b, route, edits, allowed


def _path(split: str, name: str, family: int) -> str:
    folder = SPLIT_FOLDERS[split]
    return f"./{folder}/{family % 100}/{name}.png" if split == "train" else f"./{folder}/{name}.png"


def build_cirr(config: SynthConfig) -> tuple[dict[str, Any], list[RenderJob], dict]:
    """Plan synth-cirr: its JSON documents by relative path, the images to render, and counts."""
    documents: dict[str, Any] = {}
    jobs: list[RenderJob] = []
    scenes_meta: dict[str, dict] = {}
    counts: dict[str, dict[str, int]] = {}
    pairid = 0
    set_id = 0
    for s_index, (split, n_images) in enumerate(config.cirr_images.items()):
        rng = np.random.default_rng([config.seed, 2, s_index])
        taken: set = set()
        split_paths: dict[str, str] = {}
        records, meta, gallery_captions = [], [], []
        for family in range(n_images // config.cirr_family_size):
            members = _family(config.cirr_family_size, taken, rng)
            for first in range(0, len(members), SET_SIZE):
                set_indices = list(rng.permutation(range(first, first + SET_SIZE)))
                names = {i: f"{SPLIT_FOLDERS[split]}-{family}-{set_id}-img{j}" for j, i in enumerate(set_indices)}
                member_names = [names[i] for i in set_indices]
                for i in set_indices:
                    split_paths[names[i]] = _path(split, names[i], family)
                    scenes_meta[names[i]] = members[i].to_json()
                    jobs.append(RenderJob(split_paths[names[i]][2:], members[i]))
                    caption_rng = image_rng(config.seed, names[i], "captions")
                    gallery_captions.append({"candidate": names[i], "captions": [
                        scene_caption(members[i], caption_rng, q) for q in CAPTION_QUALITIES]})
                for a, b, route, edits, allowed in _queries(members, set_indices, config.cirr_queries_per_set, rng):
                    soft = {names[m]: 0.5 for m in set_indices if m not in (a, b) and members[m].key() in allowed}
                    record = {"pairid": pairid, "reference": names[a], "target_hard": names[b],
                              "target_soft": {names[b]: 1.0, **soft},
                              "caption": chain_caption([members[i] for i in route[:-1]], edits, rng),
                              "img_set": {"id": set_id, "members": member_names,
                                          "reference_rank": member_names.index(names[a]),
                                          "target_rank": member_names.index(names[b])}}
                    meta.append({"pairid": pairid, "reference": names[a], "target": names[b],
                                 "edits": [edit_to_json(e) for e in edits], "also_correct": sorted(soft)})
                    if split == "test1":
                        for key in ("target_hard", "target_soft"):
                            del record[key]
                        del record["img_set"]["target_rank"]
                    records.append(record)
                    pairid += 1
                set_id += 1
        documents[f"cirr/captions/cap.rc2.{split}.json"] = records
        documents[f"cirr/image_splits/split.rc2.{split}.json"] = split_paths
        documents[f"gallery_captions/{split}.json"] = gallery_captions
        documents[f"synth_meta/queries.{split}.json"] = meta
        counts[split] = {"gallery": len(split_paths), "queries": len(records), "img_sets": len(split_paths) // SET_SIZE}
    documents["synth_meta/scenes.json"] = scenes_meta
    return documents, jobs, counts
