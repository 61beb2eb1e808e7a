"""Text features of gallery captions (WeiMoCIR's database side), cached like image features.

A caption file (read by ``cirlib.data.read_gallery_captions``) gives each gallery image R captions
written by a captioning model. Features are the text encoder's raw projected embeddings, shape
(N, R, D), computed through ``FeatureCache.text_features``, so the cache key holds the encoder and
every caption text. An image absent from the caption file gets empty captions, as in the WeiMoCIR
reference code; a file that covers none of the images is an error (it is the wrong file).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cirlib.data import CIRCO, CIRR, FashionIQ, captions_for, read_gallery_captions
from cirlib.encoders.loading import Encoder
from cirlib.features.cache import FeatureCache
from cirlib.features.splits import SplitFeatures, circo_features, cirr_features, fashioniq_features
from cirlib.metrics.protocols import protocol

SYNTH_CAPTION_FILES = {"fashioniq": "gallery_captions/{category}.{split}.json",
                       "cirr": "gallery_captions/{split}.json",
                       "circo": "gallery_captions/unlabeled2017.json"}
"""Where ``cirlib synth`` writes the caption files, relative to each dataset folder."""


@dataclass
class CaptionFeatures:
    """Raw caption features: ``gallery`` (G, R, D) of the gallery images and ``reference`` (Q, R, D)
    of each query's reference image (WeiMoCIR's reference code fuses those with the text)."""

    gallery: torch.Tensor
    reference: torch.Tensor

    @property
    def r(self) -> int:
        return self.gallery.shape[1]

    def select(self, indices: Sequence[int]) -> CaptionFeatures:
        """Only the captions at ``indices`` (0-based): (0, 2) is the seed's t_{n,1} ∪ t_{n,3}."""
        bad = [i for i in indices if not 0 <= i < self.r]
        if not indices or bad:
            raise ValueError(f"caption indices must be a non-empty subset of 0..{self.r - 1}, got {list(indices)}")
        return CaptionFeatures(self.gallery[:, list(indices)], self.reference[:, list(indices)])


@dataclass
class CaptionedSplit:
    """One evaluation split with all WeiMoCIR needs; ``dataset`` (a ``cirlib.metrics.PROTOCOLS`` name) picks the metrics and
    ``image_path`` (gallery name -> file) lets figures show the images."""

    dataset: str
    features: SplitFeatures
    captions: CaptionFeatures
    image_path: Callable[[Hashable], Path] | None = None

    def __post_init__(self) -> None:
        protocol(self.dataset)  # an unknown name is a ValueError naming the valid ones

    def queries(self, rows: Sequence[int]) -> CaptionedSplit:
        """The same split with only the queries at ``rows`` (see ``SplitFeatures.queries``)."""
        captions = CaptionFeatures(self.captions.gallery, self.captions.reference[[int(row) for row in rows]])
        return CaptionedSplit(self.dataset, self.features.queries(rows), captions, self.image_path)


def split_features(split: CaptionedSplit | Mapping[str, CaptionedSplit]) -> SplitFeatures | dict[str, SplitFeatures]:
    """The evaluation features inside ``split``: one ``SplitFeatures``, or {category: features} for
    FashionIQ's {category: split}."""
    return {c: s.features for c, s in split.items()} if isinstance(split, Mapping) else split.features


def caption_features(encoder: Encoder, cache: FeatureCache, caption_file: Path | str, names: Sequence[Hashable],
                     label: str, r: int = 3) -> torch.Tensor:
    """(N, r, D) raw text features of the first ``r`` captions of each image in ``names``.

    Names are looked up as strings (CIRCO's integer ids are strings in its caption file). Each
    distinct caption is encoded once; ``label`` only names the cache file.
    """
    captions = read_gallery_captions(caption_file)
    keys = [str(name) for name in names]
    missing = sum(key not in captions for key in keys)
    if keys and missing == len(keys):
        raise ValueError(f"{caption_file}: none of the {len(keys)} images (e.g. {keys[0]!r}) has captions there. "
                         "Fix: pass the caption file of this split's gallery")
    if missing:
        warnings.warn(f"{caption_file}: {missing} of {len(keys)} images have no captions; they get empty ones",
                      stacklevel=2)
    rows = captions_for(keys, captions, r)
    texts = list(dict.fromkeys(text for row in rows for text in row))
    features = cache.text_features(encoder, texts, f"{label}-captions")
    position = {text: i for i, text in enumerate(texts)}
    return features[[position[text] for row in rows for text in row]].reshape(len(rows), r, -1)


def captioned_split(encoder: Encoder, cache: FeatureCache, dataset: str, features: SplitFeatures,
                    caption_file: Path | str, label: str, image_path: Callable[[Hashable], Path] | None = None,
                    r: int = 3) -> CaptionedSplit:
    """``features`` plus the caption features of its gallery and of its queries' reference images."""
    gallery_names = list(features.gallery_names)
    known = set(gallery_names)
    names = gallery_names + [n for n in dict.fromkeys(features.reference_names) if n not in known]
    encoded = caption_features(encoder, cache, caption_file, names, label, r)
    row = {name: i for i, name in enumerate(names)}
    captions = CaptionFeatures(encoded[: len(gallery_names)], encoded[[row[n] for n in features.reference_names]])
    return CaptionedSplit(dataset, features, captions, image_path)


def _synth_fashioniq(encoder: Encoder, cache: FeatureCache, root: Path, split: str, r: int,
                     on_missing: str) -> dict[str, CaptionedSplit]:
    reader, result = FashionIQ(root, on_missing), {}
    for category in FashionIQ.CATEGORIES:
        features = fashioniq_features(encoder, cache, root, category, split, "synth-fashioniq", on_missing)
        file = root / SYNTH_CAPTION_FILES["fashioniq"].format(category=category, split=split)
        result[category] = captioned_split(encoder, cache, "fashioniq", features, file,
                                           f"synth-fashioniq-{category}-{split}", reader.image_path, r)
    return result


def _synth_cirr(encoder: Encoder, cache: FeatureCache, root: Path, split: str, r: int,
                on_missing: str) -> CaptionedSplit:
    reader = CIRR(root, on_missing)
    return captioned_split(encoder, cache, "cirr", cirr_features(encoder, cache, root, split, "synth-cirr", on_missing),
                           root / SYNTH_CAPTION_FILES["cirr"].format(split=split), f"synth-cirr-{split}",
                           lambda name: reader.image_path(name, split), r)


def _synth_circo(encoder: Encoder, cache: FeatureCache, root: Path, split: str, r: int,
                 on_missing: str) -> CaptionedSplit:
    features = circo_features(encoder, cache, root, split, "synth-circo", on_missing)
    return captioned_split(encoder, cache, "circo", features, root / SYNTH_CAPTION_FILES["circo"],
                           f"synth-circo-{split}", CIRCO(root, on_missing).image_path, r)


SYNTH_DATASETS = {"synth-fashioniq": _synth_fashioniq, "synth-cirr": _synth_cirr, "synth-circo": _synth_circo}


def synth_captioned_splits(encoder: Encoder, cache: FeatureCache, benchmark: Path | str, split: str = "val",
                           r: int = 3, datasets: Sequence[str] = tuple(SYNTH_DATASETS),
                           on_missing: str = "error") -> dict:
    """The synthetic benchmark's ``split`` of ``datasets``: {"synth-fashioniq": {category: split},
    "synth-cirr": split, "synth-circo": split}; they share the cache with ``cirlib.evaluation.evaluate.benchmark_features``.
    ``on_missing="skip"`` drops the queries that need an absent image (each split's ``features.missing`` lists
    them): scores are then over fewer queries than the paper's (see :mod:`cirlib.features.splits`)."""
    unknown = [name for name in datasets if name not in SYNTH_DATASETS]
    if unknown:
        raise ValueError(f"unknown datasets {unknown}; choose from {list(SYNTH_DATASETS)}")
    return {name: SYNTH_DATASETS[name](encoder, cache, Path(benchmark) / name, split, r, on_missing)
            for name in datasets}
