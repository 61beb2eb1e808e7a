"""Graded exercises of notebook 05 (failure cases): each query's target rank, and the failure-cause tally.

Inputs derive only from the variant seed; the expected values come from cirlib's tested code at check time
(``cirlib.metrics.ranks.target_ranks``, ``cirlib.analysis.failures.group_table``), so no answer is stored here.
Hidden cases add ties around the target, the excluded reference tied with it, a target at rank 1, a query
listing one cause twice or none, a cause nobody has, and K at the rank itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cirlib.analysis.edits import CAUSES
from cirlib.analysis.failures import group_table
from cirlib.assignment.checks import Case, Exercise, register
from cirlib.metrics.ranks import target_ranks

_METHOD = "method"  # the one method column of the frame handed to group_table


def one_based_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """(Q,) rank of each row's target counted from 1, ``exclude`` removed (-1: none), by ``target_ranks``."""
    return target_ranks(scores, targets[:, None], exclude)[:, 0] + 1


def _rank_case(rng: np.random.Generator, q: int, g: int, excluded: bool, decimals: int | None = None) -> tuple:
    """Scores (Q, G), a random target per row and, if ``excluded``, the best other column excluded (a reference
    image scores high, as in CIRR); ``decimals`` rounds the scores so that they tie."""
    scores = rng.uniform(-1, 1, (q, g))
    if decimals is not None:
        scores = scores.round(decimals)
    targets = rng.integers(0, g, q)
    others = np.where(np.arange(g) == targets[:, None], -np.inf, scores)
    exclude = others.argmax(1) if excluded else np.full(q, -1)
    return torch.from_numpy(scores).float(), torch.from_numpy(targets), torch.from_numpy(exclude)


def _tied_rank_case() -> tuple:
    """Row 0: the target (column 3) tied with columns 1 and 5, the excluded column 0 tied too; row 1: every score
    equal; row 2: the target at rank 1 with the excluded column above it."""
    scores = torch.tensor([[0.5, 0.5, 0.9, 0.5, 0.1, 0.5], [0.2] * 6, [0.1, 0.3, 0.0, 0.8, 0.9, 0.7]])
    return scores, torch.tensor([3, 4, 3]), torch.tensor([0, 2, 4])


def _rank_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 5, 1, int(hidden)])
    if not hidden:
        return [Case(_rank_case(rng, 5, 8, excluded=False), "5 queries, 8 images, nothing excluded"),
                Case(_rank_case(rng, 6, 10, excluded=True, decimals=1), "6 queries, 10 images, reference excluded, "
                                                                        "scores with one decimal (ties)")]
    return [Case(_tied_rank_case(), "ties with the target and with the excluded reference"),
            Case(_rank_case(rng, 8, 12, excluded=True, decimals=0), "scores rounded to -1, 0, 1 (many ties)"),
            Case(_rank_case(rng, 1, 2, excluded=False), "one query, two images"),
            Case(_rank_case(rng, 4, 3, excluded=True), "three images, one of them excluded")]


def tally(causes: list[list[str]], ranks: list[int], k: int) -> dict[str, tuple[int, float]]:
    """{cause: (queries, R@k in percent)} by ``cirlib.analysis.failures.group_table`` on one method's ranks."""
    frame = pd.DataFrame({"causes": pd.Series(causes, dtype=object), f"rank {_METHOD}": ranks})
    table = group_table(frame, by="causes", k=k)
    return {cause: (int(row["queries"]), float(row[f"R@{k} {_METHOD}"])) for cause, row in table.iterrows()}


def _causes(rng: np.random.Generator, q: int, pool: tuple[str, ...] = CAUSES) -> list[list[str]]:
    """One or two causes per query, in CAUSES order, drawn from ``pool``."""
    return [[c for c in CAUSES if c in set(rng.choice(pool, int(rng.integers(1, 3)), replace=False))]
            for _ in range(q)]


def _tally_case(rng: np.random.Generator, q: int, k: int, pool: tuple[str, ...] = CAUSES, worst: int = 0) -> tuple:
    """Causes, ranks from 1 to ``worst`` (default 3k) and k."""
    return _causes(rng, q, pool), [int(r) for r in rng.integers(1, (worst or 3 * k) + 1, q)], k


def _edge_tally_case() -> tuple:
    """A cause listed twice by one query, a query without causes, causes out of CAUSES order, ranks at K."""
    causes = [["count", "count"], [], ["negation", "count"], ["addition"], ["negation"]]
    return causes, [3, 1, 4, 3, 9], 3


def _tally_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 5, 2, int(hidden)])
    if not hidden:
        return [Case(_tally_case(rng, 12, 5), "12 queries, K=5"), Case(_tally_case(rng, 9, 10), "9 queries, K=10")]
    return [Case(_edge_tally_case(), "a cause listed twice, a query with no cause, ranks equal to K"),
            Case(_tally_case(rng, 10, 1), "K=1"),
            Case(_tally_case(rng, 8, 50, worst=20), "K above every rank"),
            Case(_tally_case(rng, 15, 4, pool=CAUSES[3:]), "some causes without any query"),
            Case(([[], []], [1, 2], 5), "no query has a cause")]


TARGET_RANK = register(Exercise("target_rank", _rank_cases, one_based_ranks))
CAUSE_TALLY = register(Exercise("cause_tally", _tally_cases, tally))
