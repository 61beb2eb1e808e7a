"""Notebook 01's graded exercises: Recall@K, CIRR's recalls without the reference, CIRCO's mAP@K.

Gallery images are the similarity's column indices (0..G-1), so students work on tensors, not names.
Expected values come from ``cirlib.metrics`` at check time (ties rank by lower gallery index there).
Inputs derive from the seed only: public cases use ``2 * seed``, hidden ones ``2 * seed + 1`` plus edge cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cirlib.assignment.checks import Case, Exercise, register
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall


def _generator(seed: int, hidden: bool) -> torch.Generator:
    """Public and hidden cases of one variant draw from different streams."""
    return torch.Generator().manual_seed(2 * seed + int(hidden))


def _scores(generator: torch.Generator, favoured: list[list[int]], gallery: int,
            levels: int | None = None) -> torch.Tensor:
    """(queries, gallery) float32 scores in [0, 1.7): random, plus a random boost (up to 0.7) for each query's
    ``favoured`` columns so that they tend to rank high; with ``levels``, rounded down onto steps of 1/levels."""
    boost = torch.zeros(len(favoured), gallery)
    for row, columns in enumerate(favoured):
        boost[row, columns] = 0.7
    scores = torch.rand(boost.shape, generator=generator) + boost * torch.rand(boost.shape, generator=generator)
    return scores if levels is None else torch.floor(scores * levels) / levels


def _with_top(scores: torch.Tensor, favoured: list[list[int]]) -> torch.Tensor:
    """``scores`` with each query's ``favoured`` columns above every other score, the first one highest."""
    scores = scores.clone()
    for row, columns in enumerate(favoured):
        scores[row, columns] = 2.0 + torch.arange(len(columns), 0, -1, dtype=scores.dtype)
    return scores


def recall_reference(similarity: torch.Tensor, targets: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """{K: R@K in percent}, the reference kept in the ranking (``cirlib.metrics.fashioniq_recall``)."""
    return fashioniq_recall(similarity, range(similarity.shape[1]), targets.tolist(), ks)


def _recall_case(g: torch.Generator, queries: int, gallery: int, levels: int | None = None) -> tuple:
    """(similarity, targets): one random target column per query, favoured by the scores."""
    targets = torch.randint(gallery, (queries,), generator=g)
    return _scores(g, targets[:, None].tolist(), gallery, levels), targets


def recall_cases(seed: int, hidden: bool) -> list[Case]:
    """Random and tied scores; hidden: all scores tied, K beyond the gallery, targets at rank 1, one query."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((*_recall_case(g, 8, 20), (1, 5, 10)), "8 queries, 20 gallery images, random scores"),
                Case((*_recall_case(g, 10, 12, levels=4), (1, 2, 5)), "10 queries, 12 gallery images, tied scores")]
    top_scores, top = _recall_case(g, 5, 9)
    return [Case((*_recall_case(g, 9, 15), (1, 3, 7)), "9 queries, 15 gallery images, random scores"),
            Case((torch.zeros(6, 10), torch.randperm(10, generator=g)[:6], (1, 3, 8)), "every score tied"),
            Case((*_recall_case(g, 5, 6, levels=3), (2, 6, 10)), "K larger than the gallery"),
            Case((_with_top(top_scores, top[:, None].tolist()), top, (1, 2)), "every target at rank 1"),
            Case((*_recall_case(g, 1, 7, levels=2), (1, 4)), "one query")]


def cirr_reference(similarity: torch.Tensor, references: torch.Tensor, targets: torch.Tensor,
                   subsets: torch.Tensor, ks: Sequence[int], subset_ks: Sequence[int]) -> dict[str, float]:
    """CIRR's "R@K" and "Rsubset@K" in percent (``cirlib.metrics.cirr_recall`` without its "Avg")."""
    found = cirr_recall(similarity, range(similarity.shape[1]), references.tolist(), targets.tolist(),
                        subsets.tolist(), ks, subset_ks)
    return {key: value for key, value in found.items() if key != "Avg"}


def _shuffled(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each row of ``rows`` in its own random order."""
    return rows.gather(1, torch.argsort(torch.rand(rows.shape, generator=generator), dim=1))


def _cirr_case(g: torch.Generator, sets: int, queries: int, levels: int | None = None,
               reference_first: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(similarity, references, targets, subsets): a gallery of ``sets`` image sets of 6; reference and target
    are two members of the query's set, whose members come in random order."""
    members = torch.arange(6 * sets).view(sets, 6)
    subsets = _shuffled(members[torch.randint(sets, (queries,), generator=g)], g)
    references, targets = subsets[:, 0], subsets[:, 1]
    scores = _scores(g, subsets[:, :2].tolist(), 6 * sets, levels)
    if reference_first:
        scores = _with_top(scores, references[:, None].tolist())
    return scores, references, targets, _shuffled(subsets, g)


def cirr_cases(seed: int, hidden: bool) -> list[Case]:
    """Random and tied scores; hidden: the reference scoring highest, K beyond the gallery, a single query."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((*_cirr_case(g, 5, 8), (1, 5, 10), (1, 2, 3)), "8 queries, 5 image sets of 6, random scores"),
                Case((*_cirr_case(g, 4, 10, levels=5), (1, 5, 10), (1, 2, 3)), "many tied scores")]
    return [Case((*_cirr_case(g, 6, 9), (1, 5, 10), (1, 2, 3)), "9 queries, 6 image sets of 6, random scores"),
            Case((*_cirr_case(g, 4, 8, reference_first=True), (1, 2, 5), (1, 2)), "the reference scores highest"),
            Case((*_cirr_case(g, 3, 7, levels=2), (1, 5, 50), (1, 3, 5)), "K larger than the gallery, ties"),
            Case((*_cirr_case(g, 3, 1, levels=3), (1, 10), (1,)), "one query")]


def circo_reference(similarity: torch.Tensor, ground_truth: list[list[int]], ks: Sequence[int]) -> dict[int, float]:
    """{K: mAP@K in percent}, the reference kept in the ranking (``cirlib.metrics.circo_map``)."""
    return circo_map(similarity, range(similarity.shape[1]), ground_truth, ks)


def _ground_truth(g: torch.Generator, queries: int, gallery: int, most: int) -> list[list[int]]:
    """Per query, 1 to ``most`` distinct correct gallery columns, in random order."""
    sizes = torch.randint(1, most + 1, (queries,), generator=g).tolist()
    return [torch.randperm(gallery, generator=g)[:size].tolist() for size in sizes]


def _circo_case(g: torch.Generator, queries: int, gallery: int, most: int, levels: int | None = None) -> tuple:
    """(similarity, ground_truth): 1 to ``most`` correct images per query, favoured by the scores."""
    ground_truth = _ground_truth(g, queries, gallery, most)
    return _scores(g, ground_truth, gallery, levels), ground_truth


def circo_cases(seed: int, hidden: bool) -> list[Case]:
    """Random and tied scores; hidden: more correct images than K, K beyond the gallery, all correct images first,
    one query with one correct image."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((*_circo_case(g, 6, 30, 5), (1, 3, 5, 10)),
                     "6 queries, 30 gallery images, 1 to 5 correct images each"),
                Case((*_circo_case(g, 8, 16, 4, levels=4), (1, 2, 5)), "tied scores")]
    first_scores, first = _circo_case(g, 4, 12, 3)
    return [Case((*_circo_case(g, 7, 25, 6), (1, 4, 8)), "7 queries, 25 gallery images"),
            Case((*_circo_case(g, 5, 20, 9, levels=3), (1, 2, 4)), "more correct images than K, tied scores"),
            Case((*_circo_case(g, 4, 8, 3), (5, 10, 25)), "K larger than the gallery"),
            Case((_with_top(first_scores, first), first, (1, 3, 6)), "every correct image ranked first"),
            Case((*_circo_case(g, 1, 10, 1, levels=2), (1, 5)), "one query, one correct image")]


RECALL_AT_K = register(Exercise("recall_at_k", recall_cases, recall_reference))
CIRR_RECALL_AT_K = register(Exercise("cirr_recall_at_k", cirr_cases, cirr_reference))
CIRCO_MAP_AT_K = register(Exercise("circo_map_at_k", circo_cases, circo_reference))
