"""synth-circo: scenes in CIRCO's official layout, with several correct images per query.

A query's caption leaves attributes free ("add a red circle" without a place), so several
scenes satisfy it. The generator puts a few of them in the gallery, plus near misses (one edit
away from a correct scene but not allowed by the caption), wrong one-edit variants of the
reference, and unrelated scenes; ``gt_img_ids``
is then computed by checking every gallery image against the caption's meaning, so it lists
exactly the correct images, the annotated target first.

    annotations/{val,test}.json                       CIRCO query records (test without targets)
    COCO2017_unlabeled/annotations/image_info_unlabeled2017.json   {"images": [{"id", "file_name", ...}]}
    COCO2017_unlabeled/unlabeled2017/<12-digit id>.jpg
    gallery_captions/unlabeled2017.json               [{"candidate": "<id>", "captions": [...]}]
    synth_meta/scenes.json, synth_meta/queries.<split>.json
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cirlib.data.synth.config import SynthConfig
from cirlib.data.synth.garment_text import pick
from cirlib.data.synth.render import RenderJob, image_rng
from cirlib.data.synth.scene_edits import (
    Edit,
    apply_chain,
    chain_caption,
    edit_to_json,
    matches,
    realisations,
    sample_edit,
)
from cirlib.data.synth.scene_text import scene_caption
from cirlib.data.synth.scenes import Scene, random_scene
from cirlib.data.synth.vocab import BACKGROUNDS, COLOURS, SHAPES, SIZES

CAPTION_QUALITIES = ("full", "partial", "noisy")
FREE_EDIT_KINDS = ("add", "move", "count")
ASPECTS = {"add": "addition", "count": "cardinality", "remove": "negation", "recolour": "compare_change",
           "reshape": "compare_change", "resize": "comparative_statement", "move": "spatial_relations_background",
           "background": "spatial_relations_background"}
MAX_GT = 23  # the most ground truths a real CIRCO query has
REFERENCE_NEIGHBOURS = 8  # wrong one-edit variants of each reference, so the reference alone misleads


def _query_edits(reference: Scene, rng: np.random.Generator) -> tuple[list[Scene], list[Edit]] | None:
    """One or two edits ending in one that leaves attributes free; the scenes each one edits."""
    scenes, edits = [reference], []
    if rng.random() < 0.4:
        first = sample_edit(reference, rng, kinds=("recolour", "reshape", "resize", "background", "remove"))
        if first is None:
            return None
        edits.append(first)
        scenes.append(realisations(reference, first)[0])
    last = sample_edit(scenes[-1], rng, kinds=FREE_EDIT_KINDS, free_probability=1.0)
    if last is None:
        return None
    edits.append(last)
    return scenes, edits


def _shared_concept(reference: Scene, edits: list[Edit], rng: np.random.Generator) -> str:
    """What reference and targets keep in common: an object no edit touches, else the background."""
    touched = [e.target for e in edits if e.target]
    kept = [o for o in reference.objects if not any(matches(o, t) for t in touched)]
    if kept:
        o = kept[int(rng.integers(len(kept)))]
        return f"a {pick(rng, SIZES[o.size])} {pick(rng, COLOURS[o.colour][1])} {pick(rng, SHAPES[o.shape])}"
    return f"a {pick(rng, BACKGROUNDS[reference.background][1])} background"


def build_circo(config: SynthConfig) -> tuple[dict[str, Any], list[RenderJob], dict]:
    """Plan synth-circo: its JSON documents by relative path, the images to render, and counts."""
    documents: dict[str, Any] = {}
    rng = np.random.default_rng([config.seed, 3])
    gallery: dict[tuple, Scene] = {}
    planned: dict[str, list[dict]] = {}
    for split, n_queries in config.circo_queries.items():
        planned[split] = []
        while len(planned[split]) < n_queries:
            reference = random_scene(rng, 1, 3)
            made = _query_edits(reference, rng)
            if reference.key() in gallery or made is None:
                continue
            scenes, edits = made
            allowed = apply_chain(reference, edits)
            if len(allowed) < 2 or reference.key() in {s.key() for s in allowed}:
                continue
            chosen = [allowed[i] for i in rng.choice(len(allowed), size=min(len(allowed), int(rng.integers(2, 6))),
                                                     replace=False)]
            allowed_keys = {s.key() for s in allowed}
            near_misses = []
            for scene in [*chosen[:2], *[reference] * REFERENCE_NEIGHBOURS]:
                edit = sample_edit(scene, rng)
                options = [s for s in realisations(scene, edit) if s.key() not in allowed_keys] if edit else []
                if options:
                    near_misses.append(options[int(rng.integers(len(options)))])
            for scene in [reference, *chosen, *near_misses]:
                gallery.setdefault(scene.key(), scene)
            planned[split].append({"reference": reference, "target": chosen[0], "edits": edits, "allowed": allowed_keys,
                                   "caption": chain_caption(scenes, edits, rng),
                                   "shared": _shared_concept(reference, edits, rng)})
    while len(gallery) < config.circo_gallery:
        scene = random_scene(rng, 1, 4)
        gallery.setdefault(scene.key(), scene)

    ids = sorted(int(i) for i in rng.choice(np.arange(1, 600_000), size=len(gallery), replace=False))
    order = list(rng.permutation(len(gallery)))
    scenes_by_id = {ids[pos]: scene for pos, scene in zip(order, gallery.values())}
    id_of = {scene.key(): image_id for image_id, scene in scenes_by_id.items()}

    jobs, images, gallery_captions, scenes_meta = [], [], [], {}
    for image_id in sorted(scenes_by_id):
        scene, file_name = scenes_by_id[image_id], f"{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": file_name, "width": 128, "height": 96})
        jobs.append(RenderJob(f"COCO2017_unlabeled/unlabeled2017/{file_name}", scene))
        caption_rng = image_rng(config.seed, file_name, "captions")
        gallery_captions.append({"candidate": str(image_id),
                                 "captions": [scene_caption(scene, caption_rng, q) for q in CAPTION_QUALITIES]})
        scenes_meta[str(image_id)] = scene.to_json()

    counts: dict[str, dict[str, float]] = {}
    query_id = 0
    for split, queries in planned.items():
        records, meta = [], []
        for q in queries:
            target = id_of[q["target"].key()]
            others = sorted(id_of[k] for k in q["allowed"] if k in id_of and id_of[k] != target)
            gt = [target, *others][:MAX_GT]
            record = {"reference_img_id": id_of[q["reference"].key()], "target_img_id": target,
                      "relative_caption": q["caption"], "shared_concept": q["shared"], "gt_img_ids": gt,
                      "id": query_id,
                      "semantic_aspects": sorted({ASPECTS[e.kind] for e in q["edits"]}
                                                 | ({"statement_with_conjunction"} if len(q["edits"]) > 1 else set()))}
            meta.append({"id": query_id, "edits": [edit_to_json(e) for e in q["edits"]], "gt_img_ids": gt})
            if split == "test":
                del record["target_img_id"], record["gt_img_ids"]
            records.append(record)
            query_id += 1
        documents[f"annotations/{split}.json"] = records
        documents[f"synth_meta/queries.{split}.json"] = meta
        counts[split] = {"queries": len(records), "mean_gt": round(float(np.mean([len(m["gt_img_ids"]) for m in meta])), 2)}
    documents["COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"] = {"images": images}
    documents["gallery_captions/unlabeled2017.json"] = gallery_captions
    documents["synth_meta/scenes.json"] = scenes_meta
    counts["gallery"] = {"images": len(images)}
    return documents, jobs, counts
