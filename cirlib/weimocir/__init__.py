"""Training-free WeiMoCIR: weighted image/text/caption similarity, α/β sweeps, held-out choice, reports."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.weimocir.report": ["CAPTION_SUBSETS", "caption_ablation", "feature_norms", "near_best",
                              "one_query_points", "query_count", "similarity_spread"],
    "cirlib.weimocir.select": ["held_out_choice"],
    "cirlib.weimocir.sweeps": ["best_cell", "per_cell_sweep", "sweep"],
    "cirlib.weimocir.weighted": ["PAPER_ALPHA", "PAPER_BETA", "VARIANTS", "weighted_fusion", "weighted_similarity"],
})
