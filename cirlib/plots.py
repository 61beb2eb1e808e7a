"""Figures for notebooks and reports: retrieval grids, similarity heatmaps, 2-D feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from PIL import Image


def retrieval_grid(queries: Sequence[tuple[Path, str]], results: Sequence[Sequence[Path]],
                   correct: Sequence[Sequence[bool]], thumb: float = 1.3) -> plt.Figure:
    """One row per query: the reference image (titled with the text), then the ranked results;
    correct results are outlined in green."""
    columns = 1 + max(len(r) for r in results)
    figure, axes = plt.subplots(len(queries), columns, figsize=(thumb * columns, thumb * 1.25 * len(queries)),
                                squeeze=False)
    for row, ((reference, text), ranked, hits) in enumerate(zip(queries, results, correct)):
        axes[row, 0].imshow(Image.open(reference))
        axes[row, 0].set_title(text if len(text) < 40 else text[:37] + "...", fontsize=7, loc="left")
        for col, (path, hit) in enumerate(zip(ranked, hits), start=1):
            axes[row, col].imshow(Image.open(path))
            axes[row, col].set_title(f"#{col}", fontsize=7)
            if hit:
                for spine in axes[row, col].spines.values():
                    spine.set(edgecolor="limegreen", linewidth=3)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    figure.tight_layout()
    return figure


def similarity_heatmap(similarity: torch.Tensor | np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str],
                       ax: plt.Axes | None = None) -> plt.Axes:
    """Cosine similarities as a heatmap (rows: texts, columns: images, say)."""
    ax = ax or plt.subplots(figsize=(0.5 * len(column_labels) + 2, 0.35 * len(row_labels) + 1))[1]
    sns.heatmap(np.asarray(similarity), xticklabels=column_labels, yticklabels=row_labels, cmap="viridis", ax=ax,
                cbar_kws={"label": "cosine similarity"})
    return ax


def pca_2d(features: torch.Tensor) -> np.ndarray:
    """The first two principal components of L2-normalised features, (N, 2)."""
    normalised = torch.nn.functional.normalize(features.float(), dim=-1)
    centred = normalised - normalised.mean(dim=0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ v[:2].T).numpy()


def feature_map(features: torch.Tensor, labels: Sequence[str], title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """Scatter of :func:`pca_2d` coloured by ``labels`` (an attribute of each image)."""
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    points = pca_2d(features)
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=list(labels), s=12, ax=ax, linewidth=0)
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return ax


def parameter_heatmap(values: np.ndarray, row_values: Sequence[float], column_values: Sequence[float],
                      row_label: str = "α", column_label: str = "β", marker: tuple[int, int] | None = None,
                      title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """A metric over a 2-parameter grid (rows × columns), annotated; a star marks the best cell
    (first in row-major order) and a box the cell ``marker`` = (row, column), e.g. a widget's choice."""
    ax = ax or plt.subplots(figsize=(0.55 * len(column_values) + 2, 0.45 * len(row_values) + 1))[1]
    values = np.asarray(values)
    sns.heatmap(values, annot=True, fmt=".1f", annot_kws={"fontsize": 7}, cmap="viridis", ax=ax,
                xticklabels=[f"{v:g}" for v in column_values], yticklabels=[f"{v:g}" for v in row_values],
                cbar_kws={"label": title})
    best = np.unravel_index(int(np.argmax(values)), values.shape)
    ax.plot(best[1] + 0.5, best[0] + 0.2, marker="*", color="white", markersize=9, markeredgecolor="black")
    if marker is not None:
        ax.add_patch(plt.Rectangle((marker[1], marker[0]), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set(xlabel=column_label, ylabel=row_label, title=title)
    return ax
