"""Figures for notebooks and reports: retrieval grids, similarity heatmaps, 2-D feature maps, parameter
heatmaps, recall per group."""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from PIL import Image


def _outline(ax: plt.Axes, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set(edgecolor=colour, linewidth=3)


def _thumbnail(ax: plt.Axes, path: Path, title: str) -> None:
    ax.imshow(Image.open(path))
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _shorten(text: str, longest: int) -> str:
    return text if len(text) <= longest else text[:longest - 3] + "..."


def retrieval_grid(queries: Sequence[tuple[Path, str]], results: Sequence[Sequence[Path]],
                   correct: Sequence[Sequence[bool]], thumb: float = 1.3,
                   targets: Sequence[tuple[Path, str]] | None = None, query_title: str = "reference",
                   pyplot: bool = True) -> plt.Figure:
    """One row per query: the query image (titled ``query_title``), then the ranked results (#1: the top
    result), under the query's text; correct results are outlined in green. With
    ``targets`` ((image, title) per query), a last column shows each target, outlined in orange where the
    ranked results miss it. Each row is a subfigure under constrained layout, so the text above a row takes
    its own line and no layout warning is raised; a ``suptitle`` added later gets its own space too.
    ``pyplot=False`` builds a figure pyplot does not track, for widget callbacks: IPython's post-execute hooks,
    which ipykernel runs after every widget message and possibly on another thread, draw and close pyplot's."""
    columns = 1 + max(len(r) for r in results) + (targets is not None)
    with Image.open(queries[0][0]) as first:
        width, height = first.size
    size = (thumb * columns, len(queries) * (thumb * height / width + 0.45))
    figure = plt.figure(figsize=size, layout="constrained") if pyplot else Figure(figsize=size, layout="constrained")
    longest = int(14 * thumb * columns)  # characters that fit across the row at font size 7
    rows = figure.subfigures(len(queries), 1, squeeze=False)[:, 0]
    for index, (row, (reference, text), ranked, hits) in enumerate(zip(rows, queries, results, correct)):
        row.suptitle(_shorten(text, longest), fontsize=7, x=0.005, ha="left")
        axes = row.subplots(1, columns, squeeze=False)[0]
        _thumbnail(axes[0], reference, query_title)
        for col, (path, hit) in enumerate(zip(ranked, hits), start=1):
            _thumbnail(axes[col], path, f"#{col}")
            if hit:
                _outline(axes[col], "limegreen")
        if targets is not None:
            path, title = targets[index]
            _thumbnail(axes[-1], path, title)
            _outline(axes[-1], "limegreen" if any(hits) else "darkorange")
        for ax in axes:
            if not ax.images:
                ax.axis("off")
    return figure


def image_with_word_lists(image: Path, title: str, lists: Mapping[str, Sequence[str]], highlight: Collection[str] = (),
                          thumb: float = 2.0) -> plt.Figure:
    """An image (under ``title``, wrapped) beside one column of words per named list, e.g. the tokens nearest to
    each method's pseudo-word of that image; words in ``highlight`` (say, the image's own caption words) are bold
    and green."""
    columns = 1 + len(lists)
    rows = max((len(words) for words in lists.values()), default=0)
    figure, axes = plt.subplots(1, columns, figsize=(thumb * (1 + 0.75 * len(lists)), max(thumb, 0.2 * rows + 0.8)),
                                layout="constrained", gridspec_kw={"width_ratios": [1] + [0.75] * len(lists)})
    axes = np.atleast_1d(axes)
    _thumbnail(axes[0], image, "")
    figure.suptitle(textwrap.fill(title, int(18 * thumb * (1 + 0.75 * len(lists)))), fontsize=8, x=0.01, ha="left")
    for ax, (name, words) in zip(axes[1:], lists.items()):
        ax.axis("off")
        ax.set_title(name, fontsize=9)
        for row, word in enumerate(words):
            chosen = word in highlight
            ax.text(0.05, 1 - (row + 0.5) / max(rows, 1), word, transform=ax.transAxes, va="center", fontsize=9,
                    fontweight="bold" if chosen else "normal", color="green" if chosen else "black")
    return figure


def group_recall_bars(table: pd.DataFrame, metric_prefix: str = "R@10 ", title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped bars from ``cirlib.analysis.failures.group_table``: one group per row (labelled with its
    query count), one bar per method column starting with ``metric_prefix``. The legend sits in one row
    between the title and the axes, so it never hides a bar."""
    columns = [c for c in table.columns if c.startswith(metric_prefix)]
    labels = [f"{group} ({n})" for group, n in zip(table.index, table["queries"])]
    long = (table[columns].set_axis(labels).rename(columns=lambda c: c[len(metric_prefix):])
            .reset_index(names="group").melt(id_vars="group", var_name="method", value_name=metric_prefix.strip()))
    ax = ax or plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 2), 3.4))[1]
    sns.barplot(long, x="group", y=metric_prefix.strip(), hue="method", ax=ax)
    ax.set(xlabel="", ylabel=f"{metric_prefix.strip()} (%)", ylim=(0, 100))
    ax.set_title(title, pad=22)
    sns.move_legend(ax, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(columns), title=None, frameon=False,
                    fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return ax


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
                      title: str = "", ax: plt.Axes | None = None, fmt: str = ".1f",
                      fontsize: float = 7) -> plt.Axes:
    """A metric over a 2-parameter grid (rows × columns), annotated with ``fmt`` at ``fontsize`` points; a star
    in its top-left corner, clear of the number, marks the best cell (first in row-major order) and a box the cell
    ``marker`` = (row, column), e.g. a widget's choice."""
    ax = ax or plt.subplots(figsize=(0.55 * len(column_values) + 2, 0.45 * len(row_values) + 1))[1]
    values = np.asarray(values)
    sns.heatmap(values, annot=True, fmt=fmt, annot_kws={"fontsize": fontsize}, cmap="viridis", ax=ax,
                xticklabels=[f"{v:g}" for v in column_values], yticklabels=[f"{v:g}" for v in row_values],
                cbar_kws={"label": title})
    best = np.unravel_index(int(np.argmax(values)), values.shape)
    ax.plot(best[1] + 0.16, best[0] + 0.22, marker="*", color="white", markersize=9, markeredgecolor="black")
    if marker is not None:
        ax.add_patch(plt.Rectangle((marker[1], marker[0]), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set(xlabel=column_label, ylabel=row_label, title=title)
    return ax


def composed_queries(examples: Sequence[tuple[Path, str, Path]], thumb: float = 1.8) -> plt.Figure:
    """What CIR is, one row per example: reference image + modification text -> target image."""
    figure, axes = plt.subplots(len(examples), 3, figsize=(thumb * 4.2, thumb * 1.1 * len(examples)), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 2.2, 1]})
    for row, (reference, text, target) in enumerate(examples):
        for ax, path, title in ((axes[row, 0], reference, "reference image"), (axes[row, 2], target, "target image")):
            ax.imshow(Image.open(path))
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 1].axis("off")
        axes[row, 1].text(0.5, 0.5, f"+  “{textwrap.fill(text, 34)}”  →", ha="center", va="center", fontsize=9,
                          transform=axes[row, 1].transAxes)
    figure.tight_layout()
    return figure
