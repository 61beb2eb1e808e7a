"""The metrics of a sweep's cells, from each query's target ranks: recall (FashionIQ, CIRR) and mAP (CIRCO) without a
sort per cell, and the plain ``cirlib.metrics`` path for one cell that the fast one must equal.

A split's protocol (``cirlib.metrics.protocols``) says which gallery columns count: the target or CIRCO's ground
truths, the reference column CIRR (and CIRCO on request) takes out of the ranking, and CIRR's img_set members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cirlib.features.captions import CaptionedSplit
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall
from cirlib.metrics.protocols import Protocol, map_columns, protocol


@dataclass
class GridTargets:
    """Gallery columns the metrics need, one row per query (-1 pads)."""

    rules: Protocol              # the split's dataset protocol
    relevant: torch.Tensor       # (Q, M) the target (FashionIQ, CIRR) or the ground truths (CIRCO)
    exclude: torch.Tensor        # (Q,) the column taken out of the ranking (CIRR's reference), -1: none
    subset: torch.Tensor | None  # (Q, C) CIRR: the img_set members other than the reference

    @property
    def n_relevant(self) -> torch.Tensor:
        """(Q,) how many gallery columns count as correct for each query."""
        return (self.relevant >= 0).sum(1).double()


def _columns(names: Sequence, column: Mapping, what: str) -> list[int]:
    unknown = list(dict.fromkeys(n for n in names if n not in column))
    if unknown:
        raise ValueError(f"{len(unknown)} {what} not in the gallery (e.g. {unknown[:3]}). Fix: use the gallery's own "
                         "names, or drop the queries whose images are missing")
    return [column[n] for n in names]


def _padded(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(1, max(len(row) for row in rows))
    return torch.tensor([list(row) + [-1] * (width - len(row)) for row in rows], dtype=torch.int64)


def grid_targets(split: CaptionedSplit, exclude_reference: bool) -> GridTargets:
    """The split's gallery columns by its protocol; ``exclude_reference`` is CIRCO's flag."""
    features, rules = split.features, protocol(split.dataset)
    column = {name: i for i, name in enumerate(features.gallery_names)}
    lists = ([list(dict.fromkeys(gt)) for gt in features.extra["gt_img_ids"]] if rules.several_targets
             else [[target] for target in features.target_names])
    relevant = _padded([_columns(row, column, "targets") for row in lists])
    excluded = rules.removes_reference(exclude_reference)
    exclude = (torch.tensor(_columns(features.reference_names, column, "reference images")) if excluded
               else torch.full((len(lists),), -1, dtype=torch.int64))
    subset = None
    if rules.has_subset:
        members = [[m for m in dict.fromkeys(row) if m != reference]
                   for row, reference in zip(features.extra["img_set_members"], features.reference_names)]
        subset = _padded([_columns(row, column, "img_set members") for row in members])
    return GridTargets(rules, relevant, exclude, subset)


def _recall(ranks: torch.Tensor, ks: Sequence[int]) -> dict[int, np.ndarray]:
    return {k: 100.0 * (ranks < k).double().mean(-1).numpy() for k in ks}


def _mean_ap(ranks: torch.Tensor, n_relevant: torch.Tensor, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """mAP@K from the ranks of each query's ground truths: the i-th found at rank p adds P@(p+1) = i/(p+1)."""
    ordered = ranks.sort(-1).values
    found = torch.arange(1, ranks.shape[-1] + 1, dtype=torch.float64)
    result = {}
    for k in ks:
        precision = found / (ordered.clamp_max(k) + 1).double()
        gain = torch.where(ordered < k, precision, torch.zeros((), dtype=torch.float64))
        result[k] = 100.0 * (gain.sum(-1) / n_relevant.clamp_max(k)).mean(-1).numpy()
    return result


def named_metrics(targets: GridTargets, gallery_ranks: torch.Tensor,
                  subset_ranks: torch.Tensor | None) -> dict[str, np.ndarray]:
    """{metric: values over the grid} from the ranks (cells, queries, relevant) of :class:`GridTargets`' columns, with
    the names of cirlib.metrics/evaluation: "R@K" (FashionIQ category), CIRR's "R@K", "Rsubset@K", "Avg", and CIRCO's
    "mAP@K"."""
    rules = targets.rules
    if rules.several_targets:
        return map_columns(_mean_ap(gallery_ranks, targets.n_relevant, rules.ks))
    metrics = {f"R@{k}": v for k, v in _recall(gallery_ranks[..., 0], rules.ks).items()}
    if rules.has_subset:
        metrics |= {f"Rsubset@{k}": v for k, v in _recall(subset_ranks, rules.subset_ks).items()}
        metrics["Avg"] = (metrics["R@5"] + metrics["Rsubset@1"]) / 2
    return metrics


def cell_metrics(split: CaptionedSplit, scores: torch.Tensor, exclude_reference: bool) -> dict[str, float]:
    """One cell's metrics through the ``cirlib.metrics`` functions (the plain path), named as :func:`named_metrics`."""
    f, rules = split.features, protocol(split.dataset)
    if rules.several_targets:
        return map_columns(circo_map(scores, f.gallery_names, f.extra["gt_img_ids"], rules.ks, f.reference_names,
                                     exclude_reference))
    if rules.has_subset:
        return cirr_recall(scores, f.gallery_names, f.reference_names, f.target_names, f.extra["img_set_members"],
                           rules.ks, rules.subset_ks)
    return {f"R@{k}": v for k, v in fashioniq_recall(scores, f.gallery_names, f.target_names, rules.ks).items()}
