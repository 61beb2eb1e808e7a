"""Cached CLIP features of a dataset split, ready for any fusion method.

One function per dataset reads the split through the official reader, encodes (or loads from
the cache) the gallery images and the query texts, and returns the features beside the names the
metrics need. Reference images are gallery images in all three benchmarks' evaluation splits;
any that are not are encoded too. Under ``torchrun``, give the cache the process group's context and
call these functions in every process: they encode the split together (see :mod:`cirlib.encoders.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import CIRCO, CIRR, FashionIQ, fashioniq_query_text
from .cache import FeatureCache
from .loading import Encoder


@dataclass
class SplitFeatures:
    """Features of one evaluation split. ``reference`` and ``text`` have one row per query."""

    gallery_names: list
    gallery: torch.Tensor
    reference: torch.Tensor
    text: torch.Tensor
    reference_names: list
    target_names: list | None
    query_texts: list[str]
    extra: dict


def _gather(encoder: Encoder, cache: FeatureCache, label: str, gallery_names: list, path_of, reference_names: list,
            texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    names = list(gallery_names) + sorted(set(reference_names) - set(gallery_names), key=str)
    images = cache.image_features(encoder, [str(n) for n in names], [path_of(n) for n in names], label)
    row = {n: i for i, n in enumerate(names)}
    reference = images[[row[n] for n in reference_names]]
    return images[: len(gallery_names)], reference, cache.text_features(encoder, texts, label)


def fashioniq_features(encoder: Encoder, cache: FeatureCache, root: Path | str, category: str, split: str = "val",
                       dataset: str = "fashioniq") -> SplitFeatures:
    """One FashionIQ category; query text "C1 and c2" (CLIP4Cir's validation form)."""
    reader = FashionIQ(root)
    triplets, gallery = reader.triplets(category, split), reader.gallery(category, split)
    texts = [fashioniq_query_text(t.captions) for t in triplets]
    references = [t.candidate for t in triplets]
    g, r, t = _gather(encoder, cache, f"{dataset}-{category}-{split}", gallery, reader.image_path, references, texts)
    return SplitFeatures(gallery, g, r, t, references, [x.target for x in triplets], texts, {"category": category})


def cirr_features(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "val",
                  dataset: str = "cirr") -> SplitFeatures:
    reader = CIRR(root)
    triplets, gallery = reader.triplets(split), reader.gallery(split)
    texts = [t.caption for t in triplets]
    references = [t.reference for t in triplets]
    g, r, t = _gather(encoder, cache, f"{dataset}-{split}", gallery, lambda n: reader.image_path(n, split),
                      references, texts)
    return SplitFeatures(gallery, g, r, t, references, [x.target_hard for x in triplets], texts,
                         {"img_set_members": [x.img_set.members for x in triplets],
                          "pair_ids": [x.pairid for x in triplets]})


def circo_features(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "val",
                   dataset: str = "circo") -> SplitFeatures:
    reader = CIRCO(root)
    queries, gallery = reader.queries(split), reader.gallery()
    texts = [q.relative_caption for q in queries]
    references = [q.reference_img_id for q in queries]
    g, r, t = _gather(encoder, cache, f"{dataset}-{split}", gallery, reader.image_path, references, texts)
    return SplitFeatures(gallery, g, r, t, references, [q.target_img_id for q in queries], texts,
                         {"gt_img_ids": [q.gt_img_ids for q in queries], "query_ids": [q.id for q in queries]})
