"""The sweep explorer: its plain callbacks, and the ipywidgets wiring driven without a browser.
Skipped where ipywidgets is missing (cirlib.widgets imports it)."""

from __future__ import annotations

import matplotlib
import pytest
from PIL import Image

from cirlib.fusion import weighted_similarity
from cirlib.metrics import top_k_indices
from cirlib.sweep import sweep
from tests.test_sweep import random_split

pytest.importorskip("ipywidgets")
from cirlib.widgets import Panel, Selection, SweepExplorer, compute_view, format_readouts, top_results  # noqa: E402

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def panels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    result = {}
    for kind, variant in (("cirr", "slides"), ("circo", "code")):
        split = random_split(kind, seed=1)
        for name in split.features.gallery_names:
            Image.new("RGB", (8, 8), (hash(str(name)) % 255, 90, 30)).save(folder / f"{name}.png")
        split.image_path = lambda name: folder / f"{name}.png"
        result[kind] = Panel(sweep(split, alphas=(0.0, 0.5, 0.8, 1.0), betas=(0.0, 0.1, 0.6), variant=variant,
                                   progress=False), split)
    return result


def test_compute_view_snaps_to_the_grid_and_reads_the_sweep(panels):
    view = compute_view(panels, Selection("cirr", alpha=0.77, beta=0.12, metric="R@5", query=3))
    assert (view.alpha, view.beta, view.cell) == (0.8, 0.1, (2, 1))
    assert view.readouts == panels["cirr"].result.at(0.8, 0.1)
    best = panels["cirr"].result.metrics["R@5"].max()
    assert view.best[2] == best and "best R@5: " in format_readouts(view, "R@5")
    assert "<b>R@5 " in format_readouts(view, "R@5")


@pytest.mark.parametrize("kind", ["cirr", "circo"])
def test_top_results_follow_alpha_beta_and_the_protocol(panels, kind):
    panel = panels[kind]
    f, c = panel.split.features, panel.split.captions
    variant = panel.result.variant
    query = 4
    for alpha, beta in ((0.0, 0.0), (0.8, 0.6)):
        top = top_results(panel, alpha, beta, query)
        scores = weighted_similarity(f.reference, f.text, f.gallery, c.gallery, alpha, beta, variant,
                                     c.reference)[query]
        order = [f.gallery_names[i] for i in top_k_indices(scores, 6)[0]]
        expected = [n for n in order if n != f.reference_names[query]][:5] if kind == "cirr" else order[:5]
        assert top.names == expected
        relevant = f.extra["gt_img_ids"][query] if kind == "circo" else [f.target_names[query]]
        assert top.correct == [n in relevant for n in expected]
    assert top_results(panel, 0.0, 0.0, query).names != top_results(panel, 1.0, 0.6, query).names
    with pytest.raises(IndexError, match="out of range"):
        top_results(panel, 0.0, 0.0, 99)


def test_the_widget_updates_its_outputs_when_the_controls_move(panels):
    explorer = SweepExplorer(panels)
    assert explorer.dataset.value == "cirr" and explorer.metric.value == "Avg"  # CIRR's selection metric
    assert explorer.view.cell == (0, 0)
    explorer.alpha.value, explorer.beta.value = 0.8, 0.6
    assert explorer.view.cell == (2, 2) and explorer.view.readouts == panels["cirr"].result.at(0.8, 0.6)
    assert "α=0.8, β=0.6" in explorer.readout.value
    explorer.metric.value = "R@1"
    assert "best R@1" in explorer.readout.value
    before = explorer.view.top
    explorer.query.value = 7
    assert explorer.view.top.reference == panels["cirr"].split.features.reference_names[7]
    assert explorer.view.top != before
    explorer.dataset.value = "circo"
    assert list(explorer.metric.options) == list(panels["circo"].result.metrics)
    assert explorer.metric.value == "mAP@10" and explorer.view.readouts == panels["circo"].result.at(0.8, 0.6)
    assert explorer.query.max == len(panels["circo"].split.features.reference_names) - 1
