"""Typed records for the three official CIR datasets.

Field names follow the official JSON files, so a record reads like the line it came from.
Targets are ``None`` on test splits, whose releases withhold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FashionIQTriplet:
    """One FashionIQ query: a reference ("candidate") image, two relative captions, a target."""

    category: str
    candidate: str
    captions: tuple[str, str]
    target: str | None


@dataclass(frozen=True)
class ImgSet:
    """CIRR's group of six visually similar images that a query's reference and target come from."""

    id: int
    members: tuple[str, ...]
    reference_rank: int
    target_rank: int | None


@dataclass(frozen=True)
class CIRRTriplet:
    """One CIRR query. ``target_soft`` maps image names to 1.0 (target), 0.5 (also fits) or -1.0."""

    pairid: int
    reference: str
    caption: str
    img_set: ImgSet
    target_hard: str | None
    target_soft: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CIRCOQuery:
    """One CIRCO query over COCO image ids; several gallery images may be correct (``gt_img_ids``)."""

    id: int
    reference_img_id: int
    relative_caption: str
    shared_concept: str
    target_img_id: int | None
    gt_img_ids: tuple[int, ...]
    semantic_aspects: tuple[str, ...] = ()
