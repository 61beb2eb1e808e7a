"""Each query's 0-based rank of its relevant gallery columns, counted from a score matrix without sorting.

Shared by the fast α/β sweeps (``cirlib.weimocir.sweeps``), which count ranks for every grid cell, and the
failure analysis (``cirlib.analysis.failures``). The tie rule is ``cirlib.metrics``': equal scores
rank by lower gallery index, so recall computed from these ranks equals the metrics on ranked lists.
"""

from __future__ import annotations

import torch

NOT_RANKED = torch.iinfo(torch.int64).max
"""The rank of a target that cannot be retrieved (padding, or the excluded reference itself)."""


def _count(mask: torch.Tensor) -> torch.Tensor:
    """True entries per row (summing uint8 into int32 is several times faster than a bool sum on CPU)."""
    return mask.view(torch.uint8).sum(1, dtype=torch.int32).long()


def target_ranks(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """(Q, M) 0-based rank of each relevant column in its row, the excluded column removed.

    ``relevant`` is (Q, M) gallery columns (-1 pads a shorter row), ``exclude`` (Q,) the column
    taken out of each row's ranking (-1: none). Padding and an excluded target get NOT_RANKED.

    Rank = columns scoring higher + columns scoring the same with a lower index; the second
    count is taken only on the rare rows that have such ties.
    """
    index = torch.arange(scores.shape[1], device=scores.device)
    excluded = exclude.clamp_min(0)[:, None]
    excluded_score = scores.gather(1, excluded)
    ranks = []
    for m in range(relevant.shape[1]):
        col = relevant[:, m : m + 1]
        own = scores.gather(1, col.clamp_min(0))
        rank = _count(scores > own)
        tied = scores == own
        rows = (_count(tied) > 1).nonzero()[:, 0]
        if len(rows):
            rank[rows] += _count(tied[rows] & (index < col[rows]))
        excluded_ahead = (excluded_score > own) | ((excluded_score == own) & (excluded < col))
        rank -= (excluded_ahead[:, 0] & (exclude >= 0)).long()
        ranks.append(torch.where((col[:, 0] < 0) | (col[:, 0] == exclude), NOT_RANKED, rank))
    return torch.stack(ranks, 1)


def subset_target_ranks(scores: torch.Tensor, subset: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(Q,) 0-based rank of ``target`` among the row's ``subset`` columns."""
    candidates = scores.gather(1, subset.clamp_min(0))
    own = scores.gather(1, target[:, None])
    ahead = ((candidates > own) | ((candidates == own) & (subset < target[:, None]))) & (subset >= 0)
    return torch.where((subset == target[:, None]).any(1), ahead.sum(1), NOT_RANKED)
