"""Known-wrong answers to notebook 01's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import torch


def _ranks(similarity: torch.Tensor, columns: torch.Tensor, ties_lower_first: bool = True,
           excluded: torch.Tensor | None = None) -> torch.Tensor:
    """(Q,) 1-based rank of each row's ``columns`` entry; ``excluded`` (Q,) columns are not ranked."""
    own = similarity.gather(1, columns[:, None])
    index = torch.arange(similarity.shape[1])
    before = index < columns[:, None] if ties_lower_first else index > columns[:, None]
    ahead = (similarity > own) | ((similarity == own) & before)
    if excluded is not None:
        ahead &= index != excluded[:, None]
    return 1 + ahead.sum(dim=1)


def _percent(rank: torch.Tensor, k: int) -> float:
    return 100.0 * (rank <= k).double().mean().item()


def recall_ties_by_higher_index(similarity, targets, ks):
    rank = _ranks(similarity, targets, ties_lower_first=False)
    return {k: _percent(rank, k) for k in ks}


def recall_off_by_one_in_k(similarity, targets, ks):
    rank = _ranks(similarity, targets)
    return {k: _percent(rank + 1, k) for k in ks}  # counts only the first K-1


def recall_as_fraction(similarity, targets, ks):
    rank = _ranks(similarity, targets)
    return {k: _percent(rank, k) / 100 for k in ks}


def _cirr(similarity, references, targets, subsets, ks, subset_ks, full_excluded, subset_excluded):
    """CIRR recalls with a choice of what each ranking leaves out (None: nothing)."""
    in_set = torch.zeros(similarity.shape, dtype=torch.bool).scatter(1, subsets, True)
    outside = similarity.masked_fill(~in_set, float("-inf"))
    rank, subset_rank = _ranks(similarity, targets, excluded=full_excluded), _ranks(outside, targets,
                                                                                    excluded=subset_excluded)
    return {f"R@{k}": _percent(rank, k) for k in ks} | {f"Rsubset@{k}": _percent(subset_rank, k) for k in subset_ks}


def cirr_reference_kept(similarity, references, targets, subsets, ks, subset_ks):
    return _cirr(similarity, references, targets, subsets, ks, subset_ks, None, None)


def cirr_reference_kept_in_subset(similarity, references, targets, subsets, ks, subset_ks):
    return _cirr(similarity, references, targets, subsets, ks, subset_ks, references, None)


def cirr_subset_ties_by_position(similarity, references, targets, subsets, ks, subset_ks):
    """Rsubset ranks the set in the order of ``subsets``, not by gallery index, at equal scores."""
    right = _cirr(similarity, references, targets, subsets, ks, subset_ks, references, references)
    scores = similarity.gather(1, subsets).masked_fill(subsets == references[:, None], float("-inf"))
    position = (subsets == targets[:, None]).long().argmax(dim=1)
    subset_rank = _ranks(scores, position)
    return right | {f"Rsubset@{k}": _percent(subset_rank, k) for k in subset_ks}


def _map(similarity, ground_truth, ks, normaliser, ties_lower_first=True):
    """mAP@K with AP's denominator ``normaliser(K, number correct)``."""
    order = torch.argsort(similarity if ties_lower_first else similarity.flip(1), dim=1, descending=True,
                          stable=True)
    if not ties_lower_first:
        order = similarity.shape[1] - 1 - order
    correct = torch.zeros(similarity.shape, dtype=torch.bool)
    for query, columns in enumerate(ground_truth):
        correct[query, columns] = True
    rel = correct.gather(1, order).double()
    gained = (rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1) * rel).cumsum(1)
    found = correct.sum(1).double()
    return {k: 100.0 * (gained[:, min(k, rel.shape[1]) - 1] / normaliser(k, found)).mean().item() for k in ks}


def map_divided_by_all_correct(similarity, ground_truth, ks):
    return _map(similarity, ground_truth, ks, lambda k, found: found)


def map_divided_by_k(similarity, ground_truth, ks):
    return _map(similarity, ground_truth, ks, lambda k, found: torch.full_like(found, k))


def map_ties_by_higher_index(similarity, ground_truth, ks):
    return _map(similarity, ground_truth, ks, lambda k, found: found.clamp(max=k), ties_lower_first=False)


WRONG = {
    "recall_at_k": [recall_ties_by_higher_index, recall_off_by_one_in_k, recall_as_fraction],
    "cirr_recall_at_k": [cirr_reference_kept, cirr_reference_kept_in_subset, cirr_subset_ties_by_position],
    "circo_map_at_k": [map_divided_by_all_correct, map_divided_by_k, map_ties_by_higher_index],
}
"""Per exercise of notebook 01, the wrong answers its checks must reject."""
