"""Recall@K for FashionIQ and CIRR, in percent (0-100) as the papers report it.

Every number comes from ``recall_at_k`` on ranked name lists; the similarity-matrix entry points
only rank (``cirlib.metrics.ranking``, ties by lower gallery index) and then call it, so a caller
with an external index gets identical numbers from its own top-k lists.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cirlib.metrics.ranking import (
    Name,
    _check_ks,
    _relevance,
    _require_known,
    _same_length,
    exclude_names,
    rank_gallery,
    rank_within,
)


def recall_at_k(ranked: Sequence[Sequence[Name]], targets: Sequence[Name], ks: Sequence[int]) -> dict[int, float]:
    """{K: percentage of queries whose target is among the first K names of their ranking}.

    Each ranking needs at least max(ks) names unless it already contains its target.
    """
    ks = _check_ks(ks)
    hits = _relevance(ranked, [[target] for target in targets], max(ks))
    return {k: float(100.0 * hits[:, :k].any(axis=1).mean()) for k in ks}


def fashioniq_recall(similarity: Any, gallery_names: Sequence[Name], target_names: Sequence[Name],
                     ks: Sequence[int] = (10, 50)) -> dict[int, float]:
    """FashionIQ Recall@K for one category: {K: percent}.

    Gallery = that category's val split. The reference ("candidate") image is NOT removed from the
    ranking -- the official protocol, followed by CLIP4Cir and SEARLE.
    """
    ks = _check_ks(ks)
    _require_known(target_names, set(gallery_names), "targets")
    return recall_at_k(rank_gallery(similarity, gallery_names, k=max(ks)), target_names, ks)


def fashioniq_summary(per_category: Mapping[str, Mapping[int, float]]) -> dict[str, float]:
    """The FashionIQ table row from per-category recalls ({category: {K: percent}}).

    Keys: ``"<category> R@<K>"`` for each category and K (e.g. ``"dress R@10"``); ``"avg R@<K>"``,
    the unweighted mean over categories, as papers report it; ``"avg"``, the mean of the
    ``avg R@K`` values -- with the usual ks (10, 50) that is (avg R@10 + avg R@50) / 2, CLIP4Cir's
    model-selection number. Every category must report the same ks.
    """
    if not per_category:
        raise ValueError("no categories to summarise")
    ks_per_category = {category: tuple(sorted(recalls)) for category, recalls in per_category.items()}
    ks = _check_ks(next(iter(ks_per_category.values())))
    if any(found != ks for found in ks_per_category.values()):
        raise ValueError(f"every category needs the same cut-offs, got {ks_per_category}")
    summary = {f"{category} R@{k}": float(recalls[k]) for category, recalls in per_category.items() for k in ks}
    averages = {f"avg R@{k}": float(np.mean([recalls[k] for recalls in per_category.values()])) for k in ks}
    return summary | averages | {"avg": float(np.mean(list(averages.values())))}


def cirr_rankings(similarity: Any, gallery_names: Sequence[Name], reference_names: Sequence[Name],
                  img_set_members: Sequence[Sequence[Name]], k: int = 50,
                  subset_k: int = 3) -> tuple[list[list[Name]], list[list[Name]]]:
    """CIRR's two rankings per query: (top ``k`` of the gallery, top ``subset_k`` of its img_set).

    Both leave out the query's reference image, as the CIRR protocol does. With ``k=50`` and
    ``subset_k=3`` these are exactly what ``write_cirr_submission`` wants for the test split.
    """
    _same_length({"reference_names": reference_names, "img_set_members": img_set_members})
    ranked = rank_gallery(similarity, gallery_names, k=k, exclude=reference_names)
    candidates = [[name for name in members if name != reference]
                  for members, reference in zip(img_set_members, reference_names)]
    return ranked, rank_within(similarity, gallery_names, candidates, k=subset_k)


def cirr_recall_from_rankings(ranked: Sequence[Sequence[Name]], subset_ranked: Sequence[Sequence[Name]],
                              reference_names: Sequence[Name], target_names: Sequence[Name],
                              ks: Sequence[int] = (1, 5, 10, 50),
                              subset_ks: Sequence[int] = (1, 2, 3)) -> dict[str, float]:
    """CIRR recalls from ranked lists (e.g. an index's top-k and the img_set rankings), in percent.

    The reference is removed from both rankings here if still present, so raw index output is fine
    as long as it holds max(ks) + 1 names. Keys: ``"R@<K>"``, ``"Rsubset@<K>"`` (Recall_subset@K),
    and ``"Avg"`` = (R@5 + Rsubset@1) / 2, present when 5 is in ``ks`` and 1 in ``subset_ks``.
    """
    full = recall_at_k(exclude_names(ranked, reference_names), target_names, ks)
    subset = recall_at_k(exclude_names(subset_ranked, reference_names), target_names, subset_ks)
    result = {f"R@{k}": value for k, value in full.items()} | {f"Rsubset@{k}": value for k, value in subset.items()}
    if 5 in full and 1 in subset:
        result["Avg"] = (full[5] + subset[1]) / 2
    return result


CIRR_SEVEN = ("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3")
"""The seven CIRR numbers whose means CLIP4Cir selects its CIRR models by."""
CIRR_MEANS = ("arithmetic mean", "harmonic mean", "geometric mean")
"""The keys of :func:`cirr_means`."""


def cirr_means(metrics: Mapping[str, float]) -> dict[str, float]:
    """CLIP4Cir's CIRR model-selection numbers: {"arithmetic mean", "harmonic mean", "geometric mean"} of the
    seven numbers in :data:`CIRR_SEVEN` (percent in, percent out).

    CLIP4Cir keeps the best epoch by each of them. A recall of 0 makes the harmonic and the geometric mean 0,
    their limits (Python's ``statistics.geometric_mean``, which CLIP4Cir calls, raises there instead).
    """
    values = [float(metrics[name]) for name in CIRR_SEVEN]
    geometric = 0.0 if min(values) <= 0 else statistics.geometric_mean(values)
    return dict(zip(CIRR_MEANS, (statistics.fmean(values), statistics.harmonic_mean(values), geometric)))


def cirr_recall(similarity: Any, gallery_names: Sequence[Name], reference_names: Sequence[Name],
                target_names: Sequence[Name], img_set_members: Sequence[Sequence[Name]],
                ks: Sequence[int] = (1, 5, 10, 50), subset_ks: Sequence[int] = (1, 2, 3)) -> dict[str, float]:
    """CIRR val recalls from a (queries, gallery) similarity; keys as in ``cirr_recall_from_rankings``.

    Gallery = every val image; the reference is removed from each query's ranking; Rsubset ranks
    only the query's img_set members other than the reference.
    """
    ks, subset_ks = _check_ks(ks), _check_ks(subset_ks)
    _require_known(target_names, set(gallery_names), "targets")
    ranked, subset_ranked = cirr_rankings(similarity, gallery_names, reference_names, img_set_members,
                                          k=max(ks), subset_k=max(subset_ks))
    return cirr_recall_from_rankings(ranked, subset_ranked, reference_names, target_names, ks, subset_ks)
