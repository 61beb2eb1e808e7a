"""Fast α×β grid sweeps of WeiMoCIR: recall (FashionIQ, CIRR) and mAP (CIRCO) for every cell.

Why it is fast. In both variants of ``cirlib.weimocir.weighted`` each side of the score is, for a
given α, a mean over r of ((1-α)·X_r + α·Y_r) / ‖(1-α)·a_r + α·b_r‖, where X_r = a_r·g and
Y_r = b_r·g are products with fixed normalised gallery vectors g and the norm expands into ‖a‖²,
a·b and ‖b‖². A whole grid therefore costs a fixed set of matrix products, computed once:

- ``"slides"``: image-gallery, text-gallery, image-captions and text-captions (sim(q, t_{n,r})
  averaged over r is q against the mean of the normalised captions), plus the query norms;
- ``"code"``: image-gallery, text-gallery and, per caption r, reference-caption-captions and
  text-captions, plus the norms;

then element-wise work per cell: the scores, and each query's target rank counted against them
with cirlib.metrics' tie rule (equal scores rank by lower gallery index), from which recall and
mAP follow exactly (``cirlib.weimocir.grid_metrics``) -- no matrix product and no sort per cell.
:func:`per_cell_sweep` is the plain
path (``weighted_similarity`` and the ``cirlib.metrics`` functions for every cell); both give the
same numbers (tests/test_sweep.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cirlib.features.captions import CaptionedSplit
from cirlib.metrics import fashioniq_summary
from cirlib.metrics.protocols import FASHIONIQ, protocol, require_metric
from cirlib.metrics.ranks import subset_target_ranks, target_ranks
from cirlib.util.device import exact_float32, resolve_device
from cirlib.weimocir.grid_metrics import cell_metrics, grid_targets, named_metrics
from cirlib.weimocir.weighted import VARIANTS, weighted_similarity

GRID = tuple(i / 10 for i in range(11))
"""The default α and β values: 0, 0.1, ..., 1 (an 11×11 grid)."""
_EPS = 1e-12  # F.normalize's floor on a norm

Split = CaptionedSplit | Mapping[str, CaptionedSplit]
"""One split, or FashionIQ's categories {category: split} (scored with the categories' means)."""


@dataclass
class SweepResult:
    """Metrics in percent over the grid: ``metrics[name][i, j]`` at ``alphas[i]``, ``betas[j]``."""

    alphas: np.ndarray
    betas: np.ndarray
    metrics: dict[str, np.ndarray]
    dataset: str
    variant: str
    captions: tuple[int, ...] | None = None  # the caption indices used; None: all

    def cell(self, alpha: float, beta: float) -> tuple[int, int]:
        """Indices of the grid cell nearest to (α, β)."""
        return int(np.abs(self.alphas - alpha).argmin()), int(np.abs(self.betas - beta).argmin())

    def at(self, alpha: float, beta: float) -> dict[str, float]:
        """Every metric at the grid cell nearest to (α, β)."""
        i, j = self.cell(alpha, beta)
        return {name: float(values[i, j]) for name, values in self.metrics.items()}


def best_cell(result: SweepResult, metric: str) -> tuple[float, float, float]:
    """(α, β, value) of the cell with the highest ``metric``; ties go to the lower α, then the lower β."""
    require_metric(metric, result.metrics, "the sweep result")
    i, j = np.unravel_index(int(np.argmax(result.metrics[metric])), result.metrics[metric].shape)
    return float(result.alphas[i]), float(result.betas[j]), float(result.metrics[metric][i, j])


class _Side:
    """mean_r ((1-α)·X_r + α·Y_r) / ‖(1-α)·a_r + α·b_r‖ for any α, from products made once.

    ``a`` is (R, Q, D), ``b`` (Q, D), ``targets`` (R, G, D) normalised; X_r = a_r·targets_r^T and
    Y_r = b·targets_r^T are (R, Q, G).
    """

    @exact_float32()  # IEEE float32 products on CUDA too (no TF32), so sweeps equal the CPU's
    def __init__(self, a: torch.Tensor, b: torch.Tensor, targets: torch.Tensor) -> None:
        targets_t = targets.transpose(1, 2)
        self.x, self.y = a @ targets_t, b @ targets_t
        self.aa, self.ab, self.bb = (a * a).sum(-1), (a * b).sum(-1), (b * b).sum(-1)

    def at(self, alpha: float) -> torch.Tensor:
        squared = (1 - alpha) ** 2 * self.aa + 2 * alpha * (1 - alpha) * self.ab + alpha ** 2 * self.bb
        norm = squared.clamp_min(0).sqrt().clamp_min(_EPS)
        values = torch.mul(self.x, 1 - alpha).add_(self.y, alpha=alpha).div_(norm[..., None])  # in place: fast
        return values[0] if len(values) == 1 else values.mean(0)


class ScoreGrid:
    """WeiMoCIR scores of a split's queries (rows ``queries``: a slice or an index tensor) at any (α, β), from fixed
    products.

    ``scores(α, β)`` equals ``weighted_similarity`` on those rows (to float rounding).
    """

    def __init__(self, split: CaptionedSplit, variant: str = "slides", queries: slice | torch.Tensor = slice(None),
                 device: str | torch.device = "cpu") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        device = resolve_device(device)
        features = split.features
        v, t = features.reference[queries].to(device), features.text[queries].to(device)
        gallery = F.normalize(features.gallery.to(device), dim=-1)[None]
        captions = F.normalize(split.captions.gallery.to(device), dim=-1).transpose(0, 1)  # (R, G, D)
        if variant == "slides":
            v, t = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
            self.image, self.caption = _Side(v[None], t, gallery), _Side(v[None], t, captions.mean(0, keepdim=True))
        else:
            own_captions = split.captions.reference[queries].to(device).transpose(0, 1)  # (R, Q, D)
            self.image, self.caption = _Side(v[None], t, gallery), _Side(own_captions, t, captions)
        self._alpha, self._sides = None, None

    def sides(self, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(query-to-image, query-to-captions) scores at α; the last α's are kept."""
        if alpha != self._alpha:
            self._alpha, self._sides = alpha, (self.image.at(alpha), self.caption.at(alpha))
        return self._sides

    def scores(self, alpha: float, beta: float) -> torch.Tensor:
        image, caption = self.sides(alpha)
        return torch.mul(image, 1 - beta).add_(caption, alpha=beta)


def _check_grid(values: Sequence[float], name: str) -> np.ndarray:
    grid = np.asarray(values, dtype=np.float64)
    if grid.ndim != 1 or not len(grid) or grid.min() < 0 or grid.max() > 1:
        raise ValueError(f"{name} must be a non-empty list of values in [0, 1], got {values!r}")
    return grid


def _with_captions(split: CaptionedSplit, captions: Sequence[int] | None) -> CaptionedSplit:
    if captions is None:
        return split
    return CaptionedSplit(split.dataset, split.features, split.captions.select(captions), split.image_path)


def _one_split_sweep(split: CaptionedSplit, alphas: np.ndarray, betas: np.ndarray, variant: str,
                     exclude_reference: bool, device: str | torch.device, chunk_elements: int,
                     progress: bool) -> dict[str, np.ndarray]:
    targets = grid_targets(split, exclude_reference)
    device = resolve_device(device)
    n_queries, n_gallery = split.features.text.shape[0], split.features.gallery.shape[0]
    rows = max(1, chunk_elements // (n_gallery * split.captions.r))
    gallery_ranks = torch.empty(len(alphas), len(betas), n_queries, targets.relevant.shape[1], dtype=torch.int64)
    subset_ranks = torch.empty(len(alphas), len(betas), n_queries, dtype=torch.int64)
    bar = tqdm(total=len(alphas) * len(betas) * -(-n_queries // rows), desc=f"sweep {split.dataset}", unit="cell",
               disable=not progress, mininterval=2.0)
    for start in range(0, n_queries, rows):
        part = slice(start, start + rows)
        grid = ScoreGrid(split, variant, part, device)
        relevant, exclude = targets.relevant[part].to(device), targets.exclude[part].to(device)
        for i, alpha in enumerate(alphas):
            for j, beta in enumerate(betas):
                scores = grid.scores(float(alpha), float(beta))
                gallery_ranks[i, j, part] = target_ranks(scores, relevant, exclude).cpu()
                if targets.subset is not None:
                    subset_ranks[i, j, part] = subset_target_ranks(scores, targets.subset[part].to(device),
                                                             relevant[:, 0]).cpu()
                bar.update()
    bar.close()
    return named_metrics(targets, gallery_ranks, subset_ranks if targets.subset is not None else None)


def _one_split_per_cell(split: CaptionedSplit, alphas: np.ndarray, betas: np.ndarray, variant: str,
                        exclude_reference: bool, progress: bool) -> dict[str, np.ndarray]:
    f, captions = split.features, split.captions
    cells: dict[str, np.ndarray] = {}
    with tqdm(total=len(alphas) * len(betas), desc=f"per-cell {split.dataset}", disable=not progress,
              mininterval=2.0) as bar:
        for i, alpha in enumerate(alphas):
            for j, beta in enumerate(betas):
                scores = weighted_similarity(f.reference, f.text, f.gallery, captions.gallery, float(alpha),
                                             float(beta), variant, captions.reference)
                for name, value in cell_metrics(split, scores, exclude_reference).items():
                    cells.setdefault(name, np.zeros((len(alphas), len(betas))))[i, j] = value
                bar.update()
    return cells


def _fashioniq_grid(per_category: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``fashioniq_summary`` of every cell: per-category recalls, their means and the overall mean."""
    shape = next(iter(per_category.values()))["R@10"].shape
    cells = [fashioniq_summary({c: {k: float(m[f"R@{k}"][i, j]) for k in FASHIONIQ.ks}
                                for c, m in per_category.items()}) for i in range(shape[0]) for j in range(shape[1])]
    return {name: np.array([cell[name] for cell in cells]).reshape(shape) for name in cells[0]}


def _run(split: Split, alphas: Sequence[float], betas: Sequence[float], variant: str,
         captions: Sequence[int] | None, one: Callable[..., dict[str, np.ndarray]]) -> SweepResult:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    alphas, betas = _check_grid(alphas, "alphas"), _check_grid(betas, "betas")
    if isinstance(split, Mapping):
        if any(not protocol(s.dataset).has_categories for s in split.values()):
            raise ValueError("a mapping of splits is FashionIQ's categories; pass any other split on its own")
        metrics = _fashioniq_grid({name: one(_with_captions(s, captions), alphas, betas) for name, s in split.items()})
        dataset = FASHIONIQ.name
    else:
        metrics, dataset = one(_with_captions(split, captions), alphas, betas), split.dataset
    return SweepResult(alphas, betas, metrics, dataset, variant, None if captions is None else tuple(captions))


def sweep(split: Split, alphas: Sequence[float] = GRID, betas: Sequence[float] = GRID, variant: str = "slides",
          captions: Sequence[int] | None = None, exclude_reference: bool = False, device: str | torch.device = "auto",
          chunk_elements: int = 1 << 24, progress: bool = True) -> SweepResult:
    """Every metric at every (α, β) cell, the fast way (see the module docstring).

    ``captions`` picks caption indices (0-based; None: all R), e.g. (0,) for the full captions only.
    ``exclude_reference`` is CIRCO's flag (default: SEARLE's protocol, reference kept); CIRR always
    removes it. Queries go in chunks of about ``chunk_elements`` scores per caption to bound memory.
    Exact float32 throughout, also on CUDA (no bf16, no TF32: the numbers must equal the plain path and the CPU's).
    """
    return _run(split, alphas, betas, variant, captions,
                lambda s, a, b: _one_split_sweep(s, a, b, variant, exclude_reference, device, chunk_elements,
                                                 progress))


def per_cell_sweep(split: Split, alphas: Sequence[float] = GRID, betas: Sequence[float] = GRID,
                   variant: str = "slides", captions: Sequence[int] | None = None, exclude_reference: bool = False,
                   progress: bool = True) -> SweepResult:
    """The plain path: one ``weighted_similarity`` retrieval and ``cirlib.metrics`` call per cell.

    Slow; it exists as the reference the fast :func:`sweep` must equal, and as its benchmark baseline.
    """
    return _run(split, alphas, betas, variant, captions,
                lambda s, a, b: _one_split_per_cell(s, a, b, variant, exclude_reference, progress))
