"""Cached CLIP features of a dataset split, ready for any fusion method.

One function per dataset reads the split through the official reader, encodes (or loads from
the cache) the gallery images and the query texts, and returns the features beside the names the
metrics need. Reference images are gallery images in all three benchmarks' evaluation splits;
any that are not are encoded too. Under ``torchrun``, give the cache the process group's context and
call these functions in every process: they encode the split together (see :mod:`cirlib.features.cache`).

Images a split lists but the disk lacks (real FashionIQ copies miss a few percent): ``on_missing="error"``
(the default) stops with one line naming them; ``"skip"`` drops the queries and gallery entries that need
them and records the names in ``SplitFeatures.missing``. Skipped queries are not counted, so recall is then
over fewer queries than the paper's: not comparable to a paper's number as is. The peers (CLIP4Cir,
SEARLE) drop them silently; cirlib reports how many (:func:`missing_summary`, in every result file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cirlib.data import CIRCO, CIRR, FashionIQ, fashioniq_query_text
from cirlib.data.reader import DatasetReader
from cirlib.encoders.loading import Encoder
from cirlib.features.cache import FeatureCache


@dataclass
class SplitFeatures:
    """Features of one evaluation split. ``reference`` and ``text`` have one row per query; ``missing`` maps a
    listing file (relative to the dataset root) to the absent images skipped from it (empty: nothing skipped)."""

    gallery_names: list
    gallery: torch.Tensor
    reference: torch.Tensor
    text: torch.Tensor
    reference_names: list
    target_names: list | None
    query_texts: list[str]
    extra: dict
    missing: dict[str, list[str]] = field(default_factory=dict)

    def queries(self, rows: Sequence[int]) -> SplitFeatures:
        """The same split (same gallery) with only the queries at ``rows``, e.g. one half of val for choosing
        parameters on. Every per-query field follows, ``extra``'s per-query lists included (a list with one entry
        per query); other ``extra`` values (FashionIQ's "category") are kept as they are."""
        rows, n = [int(row) for row in rows], len(self.text)
        extra = {key: _take(value, rows) if isinstance(value, list) and len(value) == n else value
                 for key, value in self.extra.items()}
        targets = None if self.target_names is None else _take(self.target_names, rows)
        return SplitFeatures(self.gallery_names, self.gallery, self.reference[rows], self.text[rows],
                             _take(self.reference_names, rows), targets, _take(self.query_texts, rows), extra,
                             self.missing)


def _take(values: Sequence, rows: Sequence[int]) -> list:
    return [values[row] for row in rows]


def reader_missing(reader: DatasetReader) -> dict[str, list[str]]:
    """What ``reader`` skipped so far, as ``SplitFeatures.missing`` holds it."""
    return {listing: list(names) for listing, names in reader.missing.items()}


def merged_missing(features: SplitFeatures | Mapping[str, SplitFeatures]) -> dict[str, list[str]]:
    """``missing`` of one split, or of FashionIQ's {category: split} together."""
    splits = features.values() if isinstance(features, Mapping) else [features]
    return {listing: names for split in splits for listing, names in split.missing.items()}


def missing_summary(missing: Mapping[str, list[str]]) -> dict:
    """For result files: how many distinct images were skipped, and which listing files lacked which."""
    names = {name for listed in missing.values() for name in listed}
    return {"skipped images": len(names), "files": {listing: list(missing[listing]) for listing in sorted(missing)}}


def _gather(encoder: Encoder, cache: FeatureCache, label: str, gallery_names: list, path_of, reference_names: list,
            texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    names = list(gallery_names) + sorted(set(reference_names) - set(gallery_names), key=str)
    images = cache.image_features(encoder, [str(n) for n in names], [path_of(n) for n in names], label)
    row = {n: i for i, n in enumerate(names)}
    reference = images[[row[n] for n in reference_names]]
    return images[: len(gallery_names)], reference, cache.text_features(encoder, texts, label)


def fashioniq_features(encoder: Encoder, cache: FeatureCache, root: Path | str, category: str, split: str = "val",
                       dataset: str = "fashioniq", on_missing: str = "error") -> SplitFeatures:
    """One FashionIQ category; query text "C1 and c2" (CLIP4Cir's validation form), each query's two captions in
    ``extra["captions"]`` (for SEARLE's two-order protocol, ``cirlib.inversion.evaluate``). ``on_missing="skip"``
    drops the queries that need an absent image, so recall is over fewer queries than the paper's (module docstring)."""
    reader = FashionIQ(root, on_missing)
    triplets, gallery = reader.triplets(category, split), reader.gallery(category, split)
    texts = [fashioniq_query_text(t.captions) for t in triplets]
    references = [t.candidate for t in triplets]
    g, r, t = _gather(encoder, cache, f"{dataset}-{category}-{split}", gallery, reader.image_path, references, texts)
    extra = {"category": category, "captions": [tuple(x.captions) for x in triplets]}
    return SplitFeatures(gallery, g, r, t, references, [x.target for x in triplets], texts, extra,
                         reader_missing(reader))


def cirr_features(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "val",
                  dataset: str = "cirr", on_missing: str = "error") -> SplitFeatures:
    """CIRR's ``split``; ``on_missing`` as in :func:`fashioniq_features` (skipped queries are not counted)."""
    reader = CIRR(root, on_missing)
    triplets, gallery = reader.triplets(split), reader.gallery(split)
    texts = [t.caption for t in triplets]
    references = [t.reference for t in triplets]
    g, r, t = _gather(encoder, cache, f"{dataset}-{split}", gallery, lambda n: reader.image_path(n, split),
                      references, texts)
    return SplitFeatures(gallery, g, r, t, references, [x.target_hard for x in triplets], texts,
                         {"img_set_members": [x.img_set.members for x in triplets],
                          "pair_ids": [x.pairid for x in triplets]}, reader_missing(reader))


def circo_features(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "val",
                   dataset: str = "circo", on_missing: str = "error") -> SplitFeatures:
    """CIRCO's ``split``; ``on_missing`` as in :func:`fashioniq_features` (skipped queries are not counted)."""
    reader = CIRCO(root, on_missing)
    queries, gallery = reader.queries(split), reader.gallery()
    texts = [q.relative_caption for q in queries]
    references = [q.reference_img_id for q in queries]
    g, r, t = _gather(encoder, cache, f"{dataset}-{split}", gallery, reader.image_path, references, texts)
    return SplitFeatures(gallery, g, r, t, references, [q.target_img_id for q in queries], texts,
                         {"gt_img_ids": [q.gt_img_ids for q in queries], "query_ids": [q.id for q in queries]},
                         reader_missing(reader))
