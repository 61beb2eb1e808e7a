"""Interactive α/β exploration of WeiMoCIR sweeps with ipywidgets.

The logic is plain functions: :func:`compute_view` takes a :class:`Selection` (dataset, α, β,
metric, query) and returns a :class:`View` (the snapped grid cell, every metric there, the best
cell, the top-5 of the chosen query), so it is tested without a browser. :class:`SweepExplorer`
is the thin layer that wires sliders and dropdowns to it and draws the heatmap and the results.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .encoders.captions import CaptionedSplit
from .fusion.weighted import weighted_similarity
from .metrics import rank_gallery
from .plots import parameter_heatmap, retrieval_grid
from .sweep import SELECT_BY, SweepResult, best_cell


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
    if not 0 <= query < len(f.reference_names):
        raise IndexError(f"query {query} is out of range: the split has {len(f.reference_names)} queries")
    row = slice(query, query + 1)
    scores = weighted_similarity(f.reference[row], f.text[row], f.gallery, captions.gallery, alpha, beta,
                                 panel.result.variant, captions.reference[row])
    exclude = [f.reference_names[query]] if panel.split.kind == "cirr" else None
    names = rank_gallery(scores, f.gallery_names, k=k, exclude=exclude)[0]
    relevant = set(f.extra["gt_img_ids"][query]) if panel.split.kind == "circo" else {f.target_names[query]}
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
    """The benchmark's model-selection metric (``SELECT_BY``), else the first one."""
    preferred = SELECT_BY.get(result.kind)
    return preferred if preferred in result.metrics else next(iter(result.metrics))


class SweepExplorer:
    """α and β sliders, dataset and metric ("K") selectors and a query slider, updating live the
    readouts, the heatmap marker and the top-5 grid. ``view`` holds the last :class:`View`."""

    def __init__(self, panels: Mapping[str, Panel], k: int = 5) -> None:
        if not panels:
            raise ValueError("give at least one panel: {dataset name: Panel(sweep result, split)}")
        self.panels, self.k, self._syncing = dict(panels), k, False
        self.dataset = widgets.Dropdown(options=list(self.panels), description="dataset")
        self.metric = widgets.Dropdown(description="K")
        self.alpha = widgets.SelectionSlider(options=[0.0], description="α")
        self.beta = widgets.SelectionSlider(options=[0.0], description="β")
        self.query = widgets.IntSlider(min=0, max=0, description="query")
        self.readout, self.heatmap, self.results = widgets.HTML(), widgets.Output(), widgets.Output()
        # CSS classes name the parts for browser tests (tests/test_browser.py) and custom styling.
        self.alpha.add_class("cirlib-alpha-slider")
        self.beta.add_class("cirlib-beta-slider")
        self.readout.add_class("cirlib-recall-readout")
        self.view: View | None = None
        self._configure()
        for control in (self.dataset, self.metric, self.alpha, self.beta, self.query):
            control.observe(self._changed, names="value")
        self.refresh()

    @property
    def widget(self) -> widgets.Widget:
        controls = widgets.HBox([widgets.VBox([self.dataset, self.metric]),
                                 widgets.VBox([self.alpha, self.beta, self.query])])
        return widgets.VBox([controls, self.readout, widgets.HBox([self.heatmap, self.results])])

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
        if self._syncing:
            return
        if change["owner"] is self.dataset:
            self._configure()
        self.refresh()

    def refresh(self) -> None:
        """Recompute the view and redraw."""
        self.view = compute_view(self.panels, self.selection(), self.k)
        self.readout.value = format_readouts(self.view, self.metric.value)
        panel = self.panels[self.dataset.value]
        with self.heatmap:
            self.heatmap.clear_output(wait=True)
            figure, ax = plt.subplots(figsize=(6.5, 5))
            parameter_heatmap(panel.result.metrics[self.metric.value], panel.result.alphas, panel.result.betas,
                              marker=self.view.cell, title=f"{self.dataset.value}: {self.metric.value}", ax=ax)
            display(figure)
            plt.close(figure)
        with self.results:
            self.results.clear_output(wait=True)
            top, path = self.view.top, panel.split.image_path
            if path is None:
                print(top.text, "->", [f"{n}{' ✓' if ok else ''}" for n, ok in zip(top.names, top.correct)])
            else:
                figure = retrieval_grid([(path(top.reference), top.text)], [[path(n) for n in top.names]],
                                        [top.correct], thumb=1.6)
                display(figure)
                plt.close(figure)
