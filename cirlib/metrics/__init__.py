"""Retrieval metrics for FashionIQ, CIRR and CIRCO, from a similarity matrix or from ranked lists.

Conventions (see each module): recalls and mAP are in percent; equal scores rank by lower gallery
index; FashionIQ keeps the reference in the ranking, CIRR removes it, CIRCO keeps it by default
(SEARLE) with ``exclude_reference=True`` to remove it; ``protocol(dataset)`` holds each dataset's conventions.
"""

from cirlib.metrics.circo import circo_map, circo_map_from_rankings
from cirlib.metrics.protocols import PROTOCOLS, Protocol, map_columns, protocol, require_metric
from cirlib.metrics.ranking import exclude_names, rank_gallery, rank_within, top_k_indices
from cirlib.metrics.recall import (
    cirr_rankings,
    cirr_recall,
    cirr_recall_from_rankings,
    fashioniq_recall,
    fashioniq_summary,
    recall_at_k,
)
from cirlib.metrics.submission import write_circo_submission, write_cirr_submission

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "circo_map",
    "circo_map_from_rankings",
    "cirr_rankings",
    "cirr_recall",
    "cirr_recall_from_rankings",
    "exclude_names",
    "fashioniq_recall",
    "fashioniq_summary",
    "map_columns",
    "protocol",
    "rank_gallery",
    "rank_within",
    "recall_at_k",
    "require_metric",
    "top_k_indices",
    "write_circo_submission",
    "write_cirr_submission",
]
