"""synth-fashioniq: garments in FashionIQ's official layout.

Per category and split, the gallery holds distinct garments (no two share all six attributes),
and each query's target differs from its reference in 1-3 attributes, so exactly one gallery
image is correct. Files written under ``root``:

    captions/cap.<category>.<split>.json     [{"target", "candidate", "captions": [c1, c2]}]
    image_splits/split.<category>.<split>.json
    images/<name>.png
    gallery_captions/<category>.<split>.json  [{"candidate": name, "captions": [full, partial, noisy]}]
    synth_meta/attributes.json                {name: {category, colour, ...}}
    synth_meta/queries.<category>.<split>.json [{"candidate", "target", "changed": [...]}]
Test captions omit "target", as the release withholds it; synth_meta keeps it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cirlib.data.synth.config import SynthConfig
from cirlib.data.synth.garment_text import changed_attributes, garment_caption, relative_captions
from cirlib.data.synth.garments import Garment, garment_codes, garment_from_codes
from cirlib.data.synth.render import RenderJob, image_rng
from cirlib.data.synth.vocab import GARMENT_ATTRIBUTES, GARMENT_CATEGORIES, GARMENT_VALUES

CAPTION_QUALITIES = ("full", "partial", "noisy")
LINE_SIZE = 48  # garments per product line
# How many attributes a pair changes: mostly two or three, so the reference alone is a poor guide.
CHANGE_COUNT_PROBS = {1: 0.2, 2: 0.4, 3: 0.4}


def _distinct_garments(category: str, n: int, rng: np.random.Generator) -> list[Garment]:
    """``n`` distinct garments in product lines: a base garment and variants 1-2 attributes away.

    Lines keep every reference among many look-alikes at any gallery size, as in a real shop,
    so that the reference image alone is a poor guide to the target.
    """
    radices = [len(GARMENT_VALUES[a]) for a in GARMENT_ATTRIBUTES]
    total = int(np.prod(radices))
    if n > total // 2:
        raise ValueError(f"a gallery of {n} distinct {category} garments is too dense: at most {total // 2}")
    seen: set[tuple[int, ...]] = set()
    codes: list[np.ndarray] = []
    while len(codes) < n:
        base = np.array([rng.integers(r) for r in radices])
        line_end = min(n, len(codes) + LINE_SIZE)
        for _ in range(LINE_SIZE * 4):
            if len(codes) == line_end:
                break
            variant = base.copy()
            for attr in rng.choice(len(radices), size=int(rng.integers(0, 3)), replace=False):
                variant[attr] = rng.integers(radices[attr])
            if tuple(variant) not in seen:
                seen.add(tuple(variant))
                codes.append(variant)
    return [garment_from_codes(category, row) for row in codes]


def _sample_pairs(gallery: list[Garment], n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    codes = np.array([garment_codes(g) for g in gallery])
    counts, probs = zip(*CHANGE_COUNT_PROBS.items())
    pairs = []
    while len(pairs) < n:
        ref = int(rng.integers(len(gallery)))
        distance = (codes != codes[ref]).sum(axis=1)
        wanted = int(rng.choice(counts, p=probs))
        candidates = np.flatnonzero(distance == wanted)
        if len(candidates) == 0:
            candidates = np.flatnonzero((distance >= 1) & (distance <= 3))
        if len(candidates) == 0:
            continue
        pairs.append((ref, int(rng.choice(candidates))))
    return pairs


def build_fashioniq(config: SynthConfig) -> tuple[dict[str, Any], list[RenderJob], dict]:
    """Plan synth-fashioniq: its JSON documents by relative path, the images to render, and counts."""
    documents: dict[str, Any] = {}
    jobs: list[RenderJob] = []
    attributes: dict[str, dict] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for c_index, category in enumerate(GARMENT_CATEGORIES):
        for s_index, (split, size) in enumerate(config.fashioniq.items()):
            rng = np.random.default_rng([config.seed, 1, c_index, s_index])
            gallery = _distinct_garments(category, size.gallery, rng)
            names = [f"{category}-{split}-{i:05d}" for i in range(len(gallery))]
            pairs = _sample_pairs(gallery, size.queries, rng)
            records, meta = [], []
            for ref, tgt in pairs:
                c1, c2 = relative_captions(gallery[ref], gallery[tgt], rng)
                record = {"target": names[tgt], "candidate": names[ref], "captions": [c1, c2]}
                if split == "test":
                    del record["target"]
                records.append(record)
                meta.append({"candidate": names[ref], "target": names[tgt],
                             "changed": changed_attributes(gallery[ref], gallery[tgt])})
            gallery_captions = []
            for name, garment in zip(names, gallery):
                caption_rng = image_rng(config.seed, name, "captions")
                gallery_captions.append({"candidate": name, "captions": [garment_caption(garment, caption_rng, q)
                                                                         for q in CAPTION_QUALITIES]})
                attributes[name] = garment.to_json()
                jobs.append(RenderJob(f"images/{name}.png", garment))
            documents[f"captions/cap.{category}.{split}.json"] = records
            documents[f"image_splits/split.{category}.{split}.json"] = names
            documents[f"gallery_captions/{category}.{split}.json"] = gallery_captions
            documents[f"synth_meta/queries.{category}.{split}.json"] = meta
            counts.setdefault(category, {})[split] = {"gallery": len(names), "queries": len(records)}
    documents["synth_meta/attributes.json"] = attributes
    return documents, jobs, counts
