"""Known-wrong answers to notebook 05's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import torch


def _rank(scores, targets, exclude, ties_ahead="lower", remove_excluded=True, base=1):
    """The target rank with one rule switched: which tied columns count as ahead ("lower", "higher", "all"),
    whether the excluded column is removed, and the base (1 or 0)."""
    own = scores.gather(1, targets[:, None])
    columns = torch.arange(scores.shape[1])
    tied_ahead = {"lower": columns < targets[:, None], "higher": columns > targets[:, None],
                  "all": columns != targets[:, None]}[ties_ahead]
    ahead = (scores > own) | ((scores == own) & tied_ahead)
    if remove_excluded:
        ahead &= columns != exclude[:, None]
    return base + ahead.sum(1)


def rank_from_zero(scores, targets, exclude):
    return _rank(scores, targets, exclude, base=0)


def rank_reference_not_removed(scores, targets, exclude):
    return _rank(scores, targets, exclude, remove_excluded=False)


def rank_ties_by_higher_index(scores, targets, exclude):
    return _rank(scores, targets, exclude, ties_ahead="higher")


def rank_every_tie_ahead(scores, targets, exclude):
    return _rank(scores, targets, exclude, ties_ahead="all")


def _tally(causes, ranks, k, once=True, hit=lambda rank, k: rank <= k, scale=100.0):
    counted = {}
    for listed, rank in zip(causes, ranks):
        for cause in (set(listed) if once else listed):
            queries, hits = counted.get(cause, (0, 0))
            counted[cause] = (queries + 1, hits + int(hit(rank, k)))
    return {cause: (queries, scale * hits / queries) for cause, (queries, hits) in counted.items()}


def tally_off_by_one_in_k(causes, ranks, k):
    return _tally(causes, ranks, k, hit=lambda rank, k: rank < k)


def tally_counts_repeated_causes(causes, ranks, k):
    return _tally(causes, ranks, k, once=False)


def tally_as_fraction(causes, ranks, k):
    return _tally(causes, ranks, k, scale=1.0)


def tally_failures_not_hits(causes, ranks, k):
    return _tally(causes, ranks, k, hit=lambda rank, k: rank > k)


WRONG = {"target_rank": [rank_from_zero, rank_reference_not_removed, rank_ties_by_higher_index, rank_every_tie_ahead],
         "cause_tally": [tally_off_by_one_in_k, tally_counts_repeated_causes, tally_as_fraction,
                         tally_failures_not_hits]}
