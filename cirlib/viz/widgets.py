"""Interactive α/β exploration of WeiMoCIR sweeps with ipywidgets.

The logic is plain functions: :func:`compute_view` takes a :class:`Selection` (dataset, α, β,
metric, query) and returns a :class:`View` (the snapped grid cell, every metric there, the best
cell, the top-5 of the chosen query), and :func:`heatmap_figure` and :func:`strip_figure` draw it,
so all of it is tested without a browser. :class:`SweepExplorer` is the thin layer that wires
sliders and dropdowns to them and shows the figures as PNG images.

The explorer never draws with pyplot. The comm layer under ipykernel triggers IPython's post-execute
hooks after every widget message, on a subshell thread when JupyterLab sends it there, and matplotlib's
inline backend then draws, displays and closes every pyplot figure, including one that another
thread's callback is still building: the top-5 strip drawn on a dataset switch came out blank.
Its figures are plain :class:`~matplotlib.figure.Figure` objects pyplot never tracks, and a lock
lets one redraw run at a time.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from html import escape

import ipywidgets as widgets
from IPython.display import display
from matplotlib.figure import Figure

from cirlib.features.captions import CaptionedSplit
from cirlib.metrics import rank_gallery
from cirlib.metrics.protocols import PROTOCOLS, protocol
from cirlib.util.errors import ConfigError
from cirlib.viz.plots import parameter_heatmap, retrieval_grid
from cirlib.weimocir.sweeps import SweepResult, best_cell
from cirlib.weimocir.weighted import weighted_similarity

DPI = 100
WIDTH = 6.5
"""Inches (650 px at ``DPI``) of the explorer's figures: a notebook output in JupyterLab is 668 px wide in a
1,100 px window with the file browser open, so the browser shows them at their own size, never scaled down."""
HELP = "Try α = 0 (the reference image only), then α = 1 (the text only): which of the top 5 change, and why?"


@dataclass
class Panel:
    """One dataset of the explorer: its sweep, and the split whose queries the results grid shows
    (for FashionIQ, whose sweep averages the categories, one category)."""

    result: SweepResult
    split: CaptionedSplit


@dataclass(frozen=True)
class Selection:
    """What the controls say."""

    dataset: str
    alpha: float
    beta: float
    metric: str
    query: int


@dataclass
class TopResults:
    """A query's top results at one (α, β): gallery names best first, and which are correct."""

    reference: Hashable
    text: str
    names: list
    correct: list[bool]


@dataclass
class View:
    """What the explorer shows for a :class:`Selection`."""

    cell: tuple[int, int]
    alpha: float
    beta: float
    readouts: dict[str, float]
    best: tuple[float, float, float]
    top: TopResults


def top_results(panel: Panel, alpha: float, beta: float, query: int, k: int = 5) -> TopResults:
    """The top ``k`` gallery images of one query under WeiMoCIR at (α, β), with the sweep's variant
    and captions; CIRR's reference is left out of the ranking, as its protocol does."""
    f, captions = panel.split.features, panel.split.captions
    if panel.result.captions is not None:
        captions = captions.select(panel.result.captions)
    count = len(f.reference_names)
    if not 0 <= query < count:
        raise ConfigError("the explorer", "query", query, f"a query index from 0 to {count - 1} ({count} queries)")
    row = slice(query, query + 1)
    scores = weighted_similarity(f.reference[row], f.text[row], f.gallery, captions.gallery, alpha, beta,
                                 panel.result.variant, captions.reference[row])
    rules = protocol(panel.split.dataset)
    exclude = [f.reference_names[query]] if rules.removes_reference() else None
    names = rank_gallery(scores, f.gallery_names, k=k, exclude=exclude)[0]
    relevant = set(f.extra["gt_img_ids"][query]) if rules.several_targets else {f.target_names[query]}
    return TopResults(f.reference_names[query], f.query_texts[query], names, [n in relevant for n in names])


def compute_view(panels: Mapping[str, Panel], selection: Selection, k: int = 5) -> View:
    """The explorer's outputs for ``selection``: α and β snap to the nearest grid cell."""
    panel = panels[selection.dataset]
    result = panel.result
    i, j = result.cell(selection.alpha, selection.beta)
    alpha, beta = float(result.alphas[i]), float(result.betas[j])
    return View((i, j), alpha, beta, result.at(alpha, beta), best_cell(result, selection.metric),
                top_results(panel, alpha, beta, selection.query, k))


def format_readouts(view: View, metric: str) -> str:
    """HTML: every metric at the chosen cell (the selected one in bold) and the best cell."""
    cells = " · ".join(f"<b>{name} {value:.1f}</b>" if name == metric else f"{name} {value:.1f}"
                       for name, value in view.readouts.items())
    alpha, beta, value = view.best
    return (f"α={view.alpha:g}, β={view.beta:g}: {cells}<br>best {metric}: {value:.1f} at α={alpha:g}, β={beta:g}")


def default_metric(result: SweepResult) -> str:
    """The benchmark's model-selection metric (its protocol's ``select_by``), else the first one."""
    preferred = protocol(result.dataset).select_by if result.dataset in PROTOCOLS else None
    return preferred if preferred in result.metrics else next(iter(result.metrics))


def query_label(top: TopResults) -> str:
    """HTML beside the query slider: the query's reference image and modification text."""
    return f"<b>{escape(str(top.reference))}</b> + “{escape(top.text)}”"


def ranked_label(top: TopResults) -> str:
    """HTML under the top-5 strip: the results' names, best first, correct ones ticked."""
    return "top results: " + " · ".join(f"{escape(str(name))}{' ✓' if ok else ''}"
                                        for name, ok in zip(top.names, top.correct))


def heatmap_figure(result: SweepResult, view: View, metric: str, title: str) -> Figure:
    """``metric`` over the α×β grid with the view's cell boxed, ``WIDTH`` inches wide; whole numbers at
    10 pt, so 11×11 cells stay legible (the readout gives the chosen cell to one decimal)."""
    figure = Figure(figsize=(WIDTH, 0.75 * WIDTH), dpi=DPI, layout="constrained")
    parameter_heatmap(result.metrics[metric], result.alphas, result.betas, marker=view.cell, title=title,
                      ax=figure.subplots(), fmt=".0f", fontsize=10)
    return figure


def strip_figure(split: CaptionedSplit, top: TopResults) -> Figure | None:
    """The query's reference image and its top results (correct ones outlined), ``WIDTH`` inches wide;
    None when the split has no images."""
    path = split.image_path
    if path is None:
        return None
    return retrieval_grid([(path(top.reference), top.text)], [[path(name) for name in top.names]], [top.correct],
                          thumb=WIDTH / (len(top.names) + 1), pyplot=False)


def to_png(figure: Figure) -> bytes:
    """``figure`` as PNG bytes at ``DPI``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def picture() -> widgets.Image:
    """An empty PNG image widget shown at its own size (a box would stretch it to its width, blurring it)."""
    return widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))


class SweepExplorer:
    """α and β sliders, dataset and metric selectors and a query slider (with the query's reference image
    and text beside it), updating live the readouts, the heatmap's box and the top-5 strip.
    ``view`` holds the last :class:`View`."""

    def __init__(self, panels: Mapping[str, Panel], k: int = 5) -> None:
        if not panels:
            raise ValueError("give at least one panel: {dataset name: Panel(sweep result, split)}")
        self.panels, self.k, self._syncing, self._lock = dict(panels), k, False, threading.RLock()
        style = {"description_width": "60px"}
        self.dataset = widgets.Dropdown(options=list(self.panels), description="dataset", style=style)
        self.metric = widgets.Dropdown(description="metric", style=style)
        self.alpha = widgets.SelectionSlider(options=[0.0], description="α", style=style,
                                             layout=widgets.Layout(width="100%"))
        self.beta = widgets.SelectionSlider(options=[0.0], description="β", style=style,
                                            layout=widgets.Layout(width="100%"))
        self.query = widgets.IntSlider(min=0, max=0, description="query", style=style,
                                       layout=widgets.Layout(width="45%", min_width="300px"))
        self.query_label = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.help, self.readout, self.ranked = widgets.HTML(HELP), widgets.HTML(), widgets.HTML()
        self.heatmap, self.strip = picture(), picture()
        # CSS classes name the parts for browser tests (tests/test_browser.py) and custom styling.
        for part, name in ((self.alpha, "alpha-slider"), (self.beta, "beta-slider"), (self.dataset, "dataset"),
                           (self.readout, "recall-readout"), (self.query_label, "query-label"), (self.help, "help"),
                           (self.heatmap, "heatmap"), (self.strip, "results")):
            part.add_class(f"cirlib-{name}")
        self.view: View | None = None
        self._configure()
        for control in (self.dataset, self.metric, self.alpha, self.beta, self.query):
            control.observe(self._changed, names="value")
        self.refresh()

    @property
    def widget(self) -> widgets.Widget:
        box = widgets.VBox([widgets.HBox([self.dataset, self.metric]), self.alpha, self.beta,
                            widgets.HBox([self.query, self.query_label]), self.help, self.readout, self.heatmap,
                            self.strip, self.ranked], layout=widgets.Layout(width="100%"))
        box.add_class("cirlib-explorer")
        return box

    def _ipython_display_(self) -> None:
        display(self.widget)

    def selection(self) -> Selection:
        return Selection(self.dataset.value, self.alpha.value, self.beta.value, self.metric.value, self.query.value)

    def _configure(self) -> None:
        """Options of the other controls for the chosen dataset, keeping their values where possible."""
        result = self.panels[self.dataset.value].result
        self._syncing = True
        try:
            metric = self.metric.value if self.metric.value in result.metrics else default_metric(result)
            self.metric.options, self.metric.value = list(result.metrics), metric
            for slider, grid in ((self.alpha, result.alphas), (self.beta, result.betas)):
                previous = slider.value
                slider.options = [(f"{v:g}", float(v)) for v in grid]
                slider.value = float(grid[abs(grid - previous).argmin()])
            self.query.max = len(self.panels[self.dataset.value].split.features.reference_names) - 1
        finally:
            self._syncing = False

    def _changed(self, change: dict) -> None:
        with self._lock:
            if self._syncing:
                return
            if change["owner"] is self.dataset:
                self._configure()
            self.refresh()

    def refresh(self) -> None:
        """Recompute the view from the controls' current values and redraw. One redraw at a time: ipykernel
        may handle two widget messages at once, on its main thread and on a subshell's."""
        with self._lock:
            self.view = view = compute_view(self.panels, self.selection(), self.k)
            panel, metric = self.panels[self.dataset.value], self.metric.value
            self.readout.value = format_readouts(view, metric)
            self.query_label.value, self.ranked.value = query_label(view.top), ranked_label(view.top)
            self.heatmap.value = to_png(heatmap_figure(panel.result, view, metric, f"{self.dataset.value}: {metric}"))
            strip = strip_figure(panel.split, view.top)
            self.strip.layout.display = "none" if strip is None else None
            self.strip.value = b"" if strip is None else to_png(strip)
