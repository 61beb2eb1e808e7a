"""Figures and interactive views: plots, the α/β sweep widgets, and the notebooks' narration helpers."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.viz.narrate": ["difference_text", "ranking", "ranking_text", "should_see", "takeaways"],
    "cirlib.viz.plots": ["feature_map", "group_recall_bars", "image_with_word_lists", "parameter_heatmap",
                        "retrieval_grid", "similarity_heatmap"],
    "cirlib.viz.widgets": ["Panel", "SweepExplorer", "top_results"],
})
