"""Training triplets as cached features: every image once, triplets as row indices.

FashionIQ's training text is drawn per sample and epoch among the four forms CLIP4Cir uses,
"C1 and c2", "C2 and c1", "C1", "C2" (first caption capitalised); their features are all cached,
so a batch only indexes tensors. CIRR has one caption per triplet.

``on_missing="skip"`` trains on the triplets whose images are all on disk and records the absent ones in
``TripletFeatures.missing`` (see :mod:`cirlib.features.splits` for what skipping means for comparability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from cirlib.data import CIRR, FashionIQ, fashioniq_query_text
from cirlib.encoders.loading import Encoder
from cirlib.features import FeatureCache
from cirlib.features.splits import reader_missing


@dataclass
class TripletFeatures:
    """Triplet i is (images[reference[i]], texts[text_of[i], form], images[target[i]]), raw features.

    ``text_of`` defaults to one text row per triplet; pseudo triplets share their source's row. ``missing`` maps a
    listing file (relative to the dataset root) to the absent images skipped from it (empty: nothing skipped).
    """

    images: torch.Tensor      # (M, D)
    reference: torch.Tensor   # (N,) long
    target: torch.Tensor      # (N,) long
    texts: torch.Tensor       # (T, V, D) V text forms per row
    image_names: list = field(default_factory=list)
    text_of: torch.Tensor | None = None  # (N,) long rows of ``texts``
    missing: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.reference)
        if self.text_of is None:
            self.text_of = torch.arange(len(self.texts))
        if len(self.target) != n or len(self.text_of) != n:
            raise ValueError(f"{n} references, {len(self.target)} targets and {len(self.text_of)} texts: "
                             "one per triplet")

    def __len__(self) -> int:
        return len(self.reference)

    @property
    def embed_dim(self) -> int:
        return self.images.shape[1]

    def batch(self, rows: torch.Tensor, variants: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reference, text, target) features of triplets ``rows`` with text forms ``variants``."""
        reference, target = self.images[self.reference[rows]], self.images[self.target[rows]]
        return reference, self.texts[self.text_of[rows], variants], target


def concatenate(parts: Sequence[TripletFeatures]) -> TripletFeatures:
    """One TripletFeatures from several (e.g. FashionIQ's three categories)."""
    images = torch.tensor([0] + [len(p.images) for p in parts]).cumsum(0)
    texts = torch.tensor([0] + [len(p.texts) for p in parts]).cumsum(0)
    return TripletFeatures(torch.cat([p.images for p in parts]),
                           torch.cat([p.reference + o for p, o in zip(parts, images)]),
                           torch.cat([p.target + o for p, o in zip(parts, images)]),
                           torch.cat([p.texts for p in parts]), [n for p in parts for n in p.image_names],
                           torch.cat([p.text_of + o for p, o in zip(parts, texts)]))


def _capitalised(caption: str) -> str:
    caption = caption.strip(".?, ")
    return caption[:1].upper() + caption[1:]


def fashioniq_training_texts(captions: Sequence[str]) -> tuple[str, str, str, str]:
    """CLIP4Cir's four training forms: "C1 and c2", "C2 and c1", "C1", "C2"."""
    return (fashioniq_query_text(captions), fashioniq_query_text(captions, flip=True),
            _capitalised(captions[0]), _capitalised(captions[1]))


def _features(encoder: Encoder, cache: FeatureCache, label: str, gallery: list, path_of, pairs: list[tuple],
              texts: list[list[str]]) -> TripletFeatures:
    """Images = the split's gallery, then any reference/target outside it (sorted, as the evaluation features
    order them, so the cache file is shared); texts: one list of forms per triplet."""
    extra = sorted({n for pair in pairs for n in pair} - set(gallery), key=str)
    names = list(gallery) + extra
    images = cache.image_features(encoder, [str(n) for n in names], [path_of(n) for n in names], label)
    row = {n: i for i, n in enumerate(names)}
    forms = len(texts[0]) if texts else 1
    flat = [text for per_triplet in texts for text in per_triplet]
    text_features = cache.text_features(encoder, flat, f"{label}-forms").reshape(len(texts), forms, encoder.embed_dim)
    reference = torch.tensor([row[r] for r, _ in pairs], dtype=torch.long)
    target = torch.tensor([row[t] for _, t in pairs], dtype=torch.long)
    return TripletFeatures(images, reference, target, text_features, names)


def fashioniq_triplets(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "train",
                       categories: Sequence[str] = FashionIQ.CATEGORIES, dataset: str = "fashioniq",
                       on_missing: str = "error") -> TripletFeatures:
    """FashionIQ triplets of ``categories`` with CLIP4Cir's four training text forms; ``on_missing="skip"`` leaves
    out the triplets that need an absent image (listed in ``missing``): training then sees fewer triplets than the
    paper's."""
    reader = FashionIQ(root, on_missing)
    parts = []
    for category in categories:
        triplets = reader.triplets(category, split)
        texts = [list(fashioniq_training_texts(t.captions)) for t in triplets]
        parts.append(_features(encoder, cache, f"{dataset}-{category}-{split}", reader.gallery(category, split),
                               reader.image_path, [(t.candidate, t.target) for t in triplets], texts))
    return replace(concatenate(parts), missing=reader_missing(reader))


def cirr_triplets(encoder: Encoder, cache: FeatureCache, root: Path | str, split: str = "train",
                  dataset: str = "cirr", on_missing: str = "error") -> TripletFeatures:
    """CIRR triplets (reference, caption, target_hard); ``on_missing`` as in :func:`fashioniq_triplets`."""
    reader = CIRR(root, on_missing)
    triplets = reader.triplets(split)
    features = _features(encoder, cache, f"{dataset}-{split}", reader.gallery(split),
                         lambda n: reader.image_path(n, split), [(t.reference, t.target_hard) for t in triplets],
                         [[t.caption] for t in triplets])
    return replace(features, missing=reader_missing(reader))
