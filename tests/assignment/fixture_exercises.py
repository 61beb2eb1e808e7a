"""Two small exercises for the assignment infrastructure's tests (the fixture notebook's setup cell imports this).

They stand apart from the notebooks' exercises so that the sample class grades the same whatever those become.
Inputs derive from the seed only; public and hidden cases draw from different streams, and the hidden ones add
the edge cases (ties, a zero row) that a plausible wrong answer misses.
"""

from __future__ import annotations

import torch

from cirlib.assignment.checks import Case, Exercise, register


def _generator(seed: int, hidden: bool) -> torch.Generator:
    return torch.Generator().manual_seed(2 * seed + int(hidden))


def top1_reference(scores: torch.Tensor) -> torch.Tensor:
    """Each row's index of its highest score, the lowest index among ties (torch.argmax's rule)."""
    return scores.argmax(dim=1)


def top1_cases(seed: int, hidden: bool) -> list[Case]:
    """Public: random scores (no ties); hidden: scores on two levels (many ties) and a row of equal scores."""
    generator = _generator(seed, hidden)
    if not hidden:
        return [Case((torch.rand(4, 6, generator=generator),), "random scores")]
    return [Case((torch.floor(2 * torch.rand(5, 6, generator=generator)),), "tied scores"),
            Case((torch.zeros(1, 3),), "a row of equal scores")]


def l2_reference(vectors: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm; a zero row stays zero."""
    return torch.nn.functional.normalize(vectors, dim=-1)


def l2_cases(seed: int, hidden: bool) -> list[Case]:
    """Public: random rows; hidden: other random rows and a zero row."""
    generator = _generator(seed, hidden)
    rows = torch.randn(3, 4, generator=generator)
    if not hidden:
        return [Case((rows,), "random rows")]
    return [Case((rows,), "other random rows"), Case((torch.cat([rows[:1], torch.zeros(1, 4)]),), "a zero row")]


register(Exercise("top1_index", top1_cases, top1_reference))
register(Exercise("l2_normalise", l2_cases, l2_reference))
