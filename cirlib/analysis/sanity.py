"""Sanity baselines of the synthetic benchmark, computed from its attribute labels alone.

* **Oracle**: scores every gallery image by attribute agreement with the *edited reference*
  (the reference with the caption's edits applied). It must reach R@1 = 100% (mAP 100 on CIRCO):
  that shows the labels are consistent, i.e. the target is the one image that fits.
* **Reference only**: scores by attribute agreement with the reference itself, as an image-only
  retriever with perfect attribute vision would. It must stay low: the caption must matter.

Agreement is the number of equal attributes for garments and the Jaccard overlap of fact sets
(see ``scene_facts``) for scenes. Ties are broken at random (seeded), not by gallery order,
so an unhelpful score cannot look good by luck of the file order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cirlib.data import CIRCO, CIRR, FashionIQ
from cirlib.data.synth.garments import Garment, garment_codes
from cirlib.data.synth.scene_edits import apply_chain, edit_from_json
from cirlib.data.synth.scenes import Scene, scene_facts, scene_from_json
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall, fashioniq_summary

TIE_JITTER = 1e-6  # far below the smallest gap between two distinct agreement scores


def garment_agreement(queries: list[Garment], gallery: list[Garment]) -> np.ndarray:
    """(Q, G) number of equal attributes."""
    q = np.array([garment_codes(g) for g in queries])
    g = np.array([garment_codes(x) for x in gallery])
    return (q[:, None, :] == g[None, :, :]).sum(axis=2).astype(np.float64)


def scene_agreement(queries: list[Scene], gallery: list[Scene]) -> np.ndarray:
    """(Q, G) Jaccard overlap of the scenes' fact sets."""
    vocabulary: dict[tuple, int] = {}
    rows = [[vocabulary.setdefault(f, len(vocabulary)) for f in set(scene_facts(s))] for s in [*queries, *gallery]]
    facts = np.zeros((len(rows), len(vocabulary)))
    for i, row in enumerate(rows):
        facts[i, row] = 1.0
    q, g = facts[: len(queries)], facts[len(queries):]
    inter = q @ g.T
    return inter / (q.sum(1)[:, None] + g.sum(1)[None, :] - inter)


def _jitter(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return scores + rng.uniform(0.0, TIE_JITTER, size=scores.shape)


def _meta(root: Path, name: str):
    return json.loads((root / "synth_meta" / name).read_text())


def fashioniq_sanity(root: Path, seed: int = 0) -> dict[str, dict[str, float]]:
    """Oracle and reference-only FashionIQ recall on the val split."""
    reader, attributes = FashionIQ(root), _meta(root, "attributes.json")
    garment = {name: Garment(**a) for name, a in attributes.items()}
    rng = np.random.default_rng(seed)
    per_category: dict[str, dict[str, dict]] = {"oracle": {}, "reference only": {}}
    for category in FashionIQ.CATEGORIES:
        triplets, names = reader.triplets(category, "val"), reader.gallery(category, "val")
        gallery = [garment[n] for n in names]
        targets = [t.target for t in triplets]
        for label, queries in (("oracle", targets), ("reference only", [t.candidate for t in triplets])):
            scores = _jitter(garment_agreement([garment[n] for n in queries], gallery), rng)
            per_category[label][category] = fashioniq_recall(scores, names, targets, ks=(1, 10, 50))
    return {label: fashioniq_summary(results) for label, results in per_category.items()}


def cirr_sanity(root: Path, seed: int = 0) -> dict[str, dict[str, float]]:
    """Oracle and reference-only CIRR recall (reference removed) on the val split."""
    reader, scenes = CIRR(root), {n: scene_from_json(s) for n, s in _meta(root, "scenes.json").items()}
    triplets, names = reader.triplets("val"), reader.gallery("val")
    gallery = [scenes[n] for n in names]
    rng = np.random.default_rng(seed)
    args = dict(gallery_names=names, reference_names=[t.reference for t in triplets],
                target_names=[t.target_hard for t in triplets], img_set_members=[t.img_set.members for t in triplets])
    return {label: cirr_recall(_jitter(scene_agreement([scenes[getattr(t, field)] for t in triplets], gallery), rng),
                               **args)
            for label, field in (("oracle", "target_hard"), ("reference only", "reference"))}


def circo_sanity(root: Path, seed: int = 0) -> dict[str, dict[int, float]]:
    """Oracle mAP (the caption's meaning checked against every image) and reference-only mAP, val split."""
    reader, scenes = CIRCO(root), {int(i): scene_from_json(s) for i, s in _meta(root, "scenes.json").items()}
    queries, ids = reader.queries("val"), reader.gallery()
    edits = {m["id"]: [edit_from_json(e) for e in m["edits"]] for m in _meta(root, "queries.val.json")}
    gallery = [scenes[i] for i in ids]
    rng = np.random.default_rng(seed)
    oracle = np.zeros((len(queries), len(ids)))
    position = {s.key(): j for j, s in enumerate(gallery)}
    for row, q in enumerate(queries):
        for scene in apply_chain(scenes[q.reference_img_id], edits[q.id]):
            if scene.key() in position:
                oracle[row, position[scene.key()]] = 1.0
    reference_only = scene_agreement([scenes[q.reference_img_id] for q in queries], gallery)
    gts = [q.gt_img_ids for q in queries]
    return {label: circo_map(_jitter(scores, rng), ids, gts, reference_ids=[q.reference_img_id for q in queries],
                             exclude_reference=True)
            for label, scores in (("oracle", oracle), ("reference only", reference_only))}


SANITY = {"synth-fashioniq": fashioniq_sanity, "synth-cirr": cirr_sanity, "synth-circo": circo_sanity}


def benchmark_sanity(out: Path | str, seed: int = 0) -> dict[str, dict]:
    """All three datasets' sanity baselines, as plain numbers for the datacards and the manifest."""
    return {name: check(Path(out) / name, seed) for name, check in SANITY.items()}
