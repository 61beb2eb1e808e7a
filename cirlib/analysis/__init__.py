"""Analyses over datasets, features and rankings (benchmark sanity checks, and more to come)."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.analysis.benchmark": ["prepare_benchmark"],
    "cirlib.analysis.curves": ["read_fusion_log", "summarise_curve"],
    "cirlib.analysis.edits": ["cirr_edit_types", "fashioniq_edit_types", "query_groups"],
    "cirlib.analysis.failures": ["failure_examples", "grid_inputs", "group_table", "method_scores",
                                "query_outcomes", "synth_image_path"],
    "cirlib.analysis.gating": ["expert_off_method", "router_weights_by_edit_type", "routing_weights",
                              "top_expert_edit_type_nmi", "utilisation"],
})
