"""WeiMoCIR's α and β chosen without peeking: 2-fold cross-fitting on the val split.

The best cell of a sweep on the split it is reported on is an upper bound: the best of 121 cells on those very
queries. Here the queries are halved at random, fixed by a seed (each FashionIQ category on its own; CIRR and CIRCO
whole). Fold A's queries are scored with the best cell of a sweep of fold B, and fold B's with the best cell of
fold A, by the benchmark's selection metric (``cirlib.metrics.protocol(dataset).select_by``). Every query is thus scored
with a cell chosen on queries disjoint from it, and the held-out number is computed on the FULL split from those
scores through ``cirlib.metrics`` (the plain path), so it is comparable with every other full-val number. Cost: one fast sweep per
half (together about one sweep of the whole split) and one scoring per half at its chosen cell.

    choice = held_out_choice(split, variant="slides")
    choice.metrics, choice.cells_text()        # the held-out numbers; e.g. "α 0.6/0.6, β 0.2/0.3"
    choice.upper_metrics, choice.upper_cell    # the best cell on the whole split: an upper bound
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from cirlib.metrics import fashioniq_summary
from cirlib.metrics.protocols import FASHIONIQ, protocol
from cirlib.weimocir.grid_metrics import cell_metrics
from cirlib.weimocir.sweeps import ScoreGrid, Split, SweepResult, best_cell, sweep

Halves = tuple[np.ndarray, np.ndarray]
"""(fold A's query rows, fold B's), each sorted."""
Cell = tuple[float, float]
"""(α, β)."""
Scores = torch.Tensor | dict[str, torch.Tensor]
"""(queries, gallery) scores of one split, or {category: scores} for FashionIQ."""
PROTOCOL = ("2-fold cross-fitting on val: the queries are halved at random (seed {seed}; FashionIQ per category); "
            "each half is scored with the best {metric} cell of a sweep of the other half, and the metrics are "
            "computed on the whole split")
"""What result files say was done (formatted with the seed and the metric)."""
_CHUNK = 1024  # queries scored at once


def query_halves(split: Split, seed: int = 0) -> Halves | dict[str, Halves]:
    """Two disjoint halves of the queries that together cover them all, fixed by ``seed``: of one split, or of each
    FashionIQ category on its own ({category: halves}). An odd count puts the extra query in fold B."""
    if isinstance(split, Mapping):
        return {name: query_halves(part, seed) for name, part in split.items()}
    n = len(split.features.text)
    if n < 2:
        raise ValueError(f"a held-out choice needs at least 2 queries per split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def fold(split: Split, halves: Halves | Mapping[str, Halves], index: int) -> Split:
    """Fold ``index`` (0: A, 1: B) of ``split``: only the queries of that half (each category's, for FashionIQ)."""
    if isinstance(split, Mapping):
        return {name: part.queries(halves[name][index]) for name, part in split.items()}
    return split.queries(halves[index])


def fold_scores(split: Split, halves: Halves | Mapping[str, Halves], cells: tuple[Cell, Cell], variant: str = "slides",
                device: str | torch.device = "cpu") -> Scores:
    """WeiMoCIR's scores of every query of ``split`` (on CPU), each at its own fold's cell: ``cells[0]`` scores fold
    A's queries, ``cells[1]`` fold B's."""
    if isinstance(split, Mapping):
        return {name: fold_scores(part, halves[name], cells, variant, device) for name, part in split.items()}
    scores = torch.empty(len(split.features.text), len(split.features.gallery_names))
    for rows, (alpha, beta) in zip(halves, cells):
        for part in torch.as_tensor(rows, dtype=torch.int64).split(_CHUNK):
            scores[part] = ScoreGrid(split, variant, part, device).scores(alpha, beta).cpu()
    return scores


def split_metrics(split: Split, scores: Scores, exclude_reference: bool = False) -> dict[str, float]:
    """Every metric of ``split`` from its scores, through the ``cirlib.metrics`` functions, with a sweep's names
    (FashionIQ's {category: split}: ``fashioniq_summary`` of the categories)."""
    if not isinstance(split, Mapping):
        return cell_metrics(split, scores, exclude_reference)
    per_category = {name: cell_metrics(part, scores[name], exclude_reference) for name, part in split.items()}
    return fashioniq_summary({name: {k: m[f"R@{k}"] for k in FASHIONIQ.ks} for name, m in per_category.items()})


@dataclass(frozen=True)
class HeldOutChoice:
    """WeiMoCIR with (α, β) chosen on the other half of val, beside the best cell of the whole split."""

    dataset: str
    variant: str
    metric: str                        # the selection metric
    seed: int
    halves: Halves | dict[str, Halves]
    cells: tuple[Cell, Cell]           # cells[0] scores fold A (chosen on fold B), cells[1] fold B (chosen on A)
    metrics: dict[str, float]          # the whole split, each query at its own fold's cell
    upper_cell: Cell                   # the best cell of the whole split's sweep: an upper bound
    upper_metrics: dict[str, float]
    exclude_reference: bool = False    # CIRCO's flag, as in ``cirlib.weimocir.sweeps.sweep``

    def cells_text(self) -> str:
        """The two chosen cells, as "α 0.6/0.6, β 0.2/0.3" (fold A's value first)."""
        (alpha_a, beta_a), (alpha_b, beta_b) = self.cells
        return f"α {alpha_a:g}/{alpha_b:g}, β {beta_a:g}/{beta_b:g}"

    def scores(self, split: Split, device: str | torch.device = "cpu") -> Scores:
        """The scores behind ``metrics`` (the split this choice was made on)."""
        return fold_scores(split, self.halves, self.cells, self.variant, device)

    def summary(self) -> dict:
        """For result files (JSON): what was done, the folds' sizes and cells, and both sets of metrics."""
        parts = self.halves.values() if isinstance(self.halves, Mapping) else [self.halves]
        return {"protocol": PROTOCOL.format(seed=self.seed, metric=self.metric), "variant": self.variant,
                "fold queries": [sum(len(halves[i]) for halves in parts) for i in (0, 1)],
                "cells": [list(cell) for cell in self.cells], "chosen": self.cells_text(), "metrics": self.metrics,
                "upper bound": {"note": "the best cell chosen on the reported split", "cell": list(self.upper_cell),
                                "metrics": self.upper_metrics}}


def _whole_sweep(split: Split, variant: str, exclude_reference: bool, device: str | torch.device,
                 full: SweepResult | None) -> SweepResult:
    """``full`` if it is a sweep of ``split`` with ``variant`` and all captions, else a new sweep (the default grid)."""
    if full is None:
        return sweep(split, variant=variant, exclude_reference=exclude_reference, device=device, progress=False)
    if full.variant != variant or full.captions is not None:
        raise ValueError(f"full is a sweep of the {full.variant!r} variant with captions {full.captions}; pass a "
                         f"sweep of the {variant!r} variant with all captions, or none")
    return full


def held_out_choice(split: Split, variant: str = "slides", metric: str | None = None, seed: int = 0,
                    full: SweepResult | None = None, exclude_reference: bool = False,
                    device: str | torch.device = "auto") -> HeldOutChoice:
    """Choose (α, β) by 2-fold cross-fitting (module docstring) and score the whole split with the choice.

    ``metric`` selects the cells (default: the ``select_by`` of the split's protocol). ``full``, the sweep of the whole
    split if the caller has it, gives the grid and the upper bound; without it one is made on the default grid.
    """
    full = _whole_sweep(split, variant, exclude_reference, device, full)
    metric = metric or protocol(full.dataset).select_by
    upper = best_cell(full, metric)[:2]
    halves = query_halves(split, seed)
    cells = tuple(best_cell(sweep(fold(split, halves, other), full.alphas, full.betas, variant,
                                  exclude_reference=exclude_reference, device=device, progress=False), metric)[:2]
                  for other in (1, 0))
    scores = fold_scores(split, halves, cells, variant, device)
    return HeldOutChoice(full.dataset, variant, metric, seed, halves, cells,
                         split_metrics(split, scores, exclude_reference), upper, full.at(*upper), exclude_reference)
