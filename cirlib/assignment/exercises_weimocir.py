"""Graded exercises of notebook 04 (WeiMoCIR): the fused score, and choosing α and β on a held-out split.

Inputs derive only from the variant seed; the expected values come from cirlib's tested code at check time
(``cirlib.weimocir.weighted.weighted_similarity``, ``cirlib.weimocir.sweeps.best_cell``), so no answer is stored here.
Public cases are small random ones; hidden cases add the grid's corners, a single caption or query, ties in the
metric grid and a 1×1 grid.
"""

from __future__ import annotations

import numpy as np
import torch

from cirlib.assignment.checks import Case, Exercise, register
from cirlib.weimocir.sweeps import SweepResult, best_cell
from cirlib.weimocir.weighted import weighted_similarity

_METRIC = "R@5"  # any name: the grids of choose_alpha_beta hold one metric


def _features(rng: np.random.Generator, q: int, g: int, r: int, d: int) -> tuple[torch.Tensor, ...]:
    """Raw (unnormalised) reference, text, gallery and caption features; the image features are longer than the
    text ones, as with real encoders, so a fusion that skips the normalisation shows."""
    def normal(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(shape) * scale).float()

    return normal(q, d, scale=3.0), normal(q, d, scale=0.5), normal(g, d, scale=2.0), normal(g, r, d)


def _score_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 4, 1, int(hidden)])
    if not hidden:
        return [Case((*_features(rng, 3, 5, 3, 8), 0.8, 0.1), "3 queries, 5 images, 3 captions, α=0.8, β=0.1"),
                Case((*_features(rng, 2, 4, 2, 6), 0.3, 0.6), "2 queries, 4 images, 2 captions, α=0.3, β=0.6")]
    return [Case((*_features(rng, 4, 6, 3, 8), 0.0, 0.0), "α=0, β=0 (image only)"),
            Case((*_features(rng, 4, 6, 3, 8), 1.0, 1.0), "α=1, β=1 (text against captions only)"),
            Case((*_features(rng, 1, 7, 1, 5), 0.5, 0.5), "one query, one caption per image"),
            Case((*_features(rng, 5, 3, 4, 8), 0.9, 0.3), "more queries than gallery images, 4 captions")]


def _result(values: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> SweepResult:
    return SweepResult(alphas, betas, {_METRIC: values}, dataset="cirr", variant="slides")


def held_out_choice(train: np.ndarray, val: np.ndarray, alphas: np.ndarray,
                    betas: np.ndarray) -> tuple[float, float, float]:
    """(α, β, val value): the best cell of ``train`` by ``cirlib.weimocir.sweeps.best_cell``, reported on ``val``."""
    alpha, beta, _ = best_cell(_result(train, alphas, betas), _METRIC)
    return alpha, beta, _result(val, alphas, betas).at(alpha, beta)[_METRIC]


def _grid(rng: np.random.Generator, a: int, b: int, levels: int | None = None) -> tuple[np.ndarray, ...]:
    """Train and val metric grids (percent) with ascending α and β; ``levels`` quantises them so cells tie."""
    def values() -> np.ndarray:
        if levels is None:
            return rng.uniform(0, 100, (a, b))
        return rng.integers(0, levels, (a, b)) * (100 / levels)

    return values(), values(), np.linspace(0, 1, a) if a > 1 else np.array([0.5]), np.linspace(0, 1, b)


def _tied_grid(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Two best train cells, one at a lower α and a higher β than the other, so the tie rule decides."""
    train, val, alphas, betas = _grid(rng, 5, 6)
    train = np.minimum(train, 90.0)
    train[1, 4] = train[3, 0] = 95.0
    return train, val, alphas, betas


def _choice_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 4, 2, int(hidden)])
    if not hidden:
        return [Case(_grid(rng, 11, 11), "an 11×11 grid"), Case(_grid(rng, 3, 4), "a 3×4 grid")]
    flat = _grid(rng, 4, 3)
    return [Case(_tied_grid(rng), "two best train cells: one at a lower α, the other at a lower β"),
            Case(_grid(rng, 6, 5, levels=4), "many ties (values in steps of 25 points)"),
            Case((np.full_like(flat[0], 40.0), *flat[1:]), "every train cell equal"),
            Case(_grid(rng, 1, 1), "a 1×1 grid"),
            Case(_grid(rng, 7, 1), "a single β")]


WEIMOCIR_SCORE = register(Exercise("weimocir_score", _score_cases, weighted_similarity))
CHOOSE_ALPHA_BETA = register(Exercise("choose_alpha_beta", _choice_cases, held_out_choice))
