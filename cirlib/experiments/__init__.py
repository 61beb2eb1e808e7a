"""Whole jobs: fusion training runs and seed tables, paper reproduction, the MoE gating study, the stage-1 table."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.experiments.job_features": ["val_features"],
    "cirlib.experiments.jobs": ["config_variant", "fusion_method", "run_fusion_job"],
    "cirlib.experiments.moe_study": ["analyse_routing", "query_texts"],
})
