"""CIRCO mAP@K, in percent: several correct gallery images per query.

AP@K = (1 / min(K, |gt|)) * sum over ranks k <= K of P@k * rel(k), averaged over queries -- the
definition in SEARLE's evaluation code (the CIRCO authors'). Recall against the single
``target_img_id`` needs nothing new: ``recall_at_k(ranked, target_ids, ks)``.

Reference exclusion: SEARLE keeps the reference image in the ranking, and so do we by default so
that numbers compare with published CIRCO results. ``exclude_reference=True`` removes it, as the
CIRR protocol does for CIRR; use it only to compare with work that states it does so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cirlib.metrics.ranking import Name, _check_ks, _listing, _relevance, _require_known, exclude_names, rank_gallery


def _references_to_exclude(reference_ids: Sequence[Name] | None, exclude_reference: bool) -> Sequence[Name] | None:
    """The names to remove from each ranking, or None when the reference stays (SEARLE's behaviour)."""
    if exclude_reference and reference_ids is None:
        raise ValueError("exclude_reference=True needs reference_ids, one per query")
    return reference_ids if exclude_reference else None


def circo_map_from_rankings(ranked: Sequence[Sequence[Name]], gt_lists: Sequence[Sequence[Name]],
                            ks: Sequence[int] = (5, 10, 25, 50), reference_ids: Sequence[Name] | None = None,
                            exclude_reference: bool = False) -> dict[int, float]:
    """{K: mAP@K in percent} from ranked id lists (at least max(ks) per query, e.g. an index's top 50).

    ``reference_ids`` is used only with ``exclude_reference=True`` (then give one id more per ranking).
    """
    ks = _check_ks(ks)
    excluded = _references_to_exclude(reference_ids, exclude_reference)
    if excluded is not None:
        ranked = exclude_names(ranked, excluded)
    empty = [query for query, gt in enumerate(gt_lists) if not gt]
    if empty:
        raise ValueError(f"{_listing(empty, 'queries')} have no ground truth; AP is undefined for them. "
                         "Fix: evaluate only the val split, whose queries all have gt_img_ids")
    depth = max(ks)
    hits = _relevance(ranked, gt_lists, depth)
    precision = np.cumsum(hits, axis=1) / np.arange(1, depth + 1)
    gained = precision * hits  # P@k * rel(k)
    n_gt = np.array([len(set(gt)) for gt in gt_lists])
    return {k: float(100.0 * np.mean(gained[:, :k].sum(axis=1) / np.minimum(k, n_gt))) for k in ks}


def circo_map(similarity: Any, gallery_ids: Sequence[Name], gt_lists: Sequence[Sequence[Name]],
              ks: Sequence[int] = (5, 10, 25, 50), reference_ids: Sequence[Name] | None = None,
              exclude_reference: bool = False) -> dict[int, float]:
    """{K: mAP@K in percent} from a (queries, gallery) similarity; ties rank by lower gallery index.

    Default keeps the reference in the ranking (SEARLE); ``exclude_reference=True`` removes
    ``reference_ids[i]`` from query i's ranking (CIRR-style).
    """
    ks = _check_ks(ks)
    _require_known((name for gt in gt_lists for name in gt), set(gallery_ids), "ground-truth ids")
    ranked = rank_gallery(similarity, gallery_ids, k=max(ks),
                          exclude=_references_to_exclude(reference_ids, exclude_reference))
    return circo_map_from_rankings(ranked, gt_lists, ks, reference_ids, exclude_reference)
