"""CIR Lab: composed image retrieval research and teaching library.

The names below are the public API (imported on first use, so ``import cirlib`` and ``cirlib synth`` stay
fast). The layers, lowest first, each a package with its own exports: ``util``, ``data``, ``metrics``,
``encoders``, ``features``, ``fusion``, ``index``, ``train``, ``evaluation``, ``weimocir``, ``inversion``,
``analysis``, ``viz``, ``experiments``, ``apps``, ``assignment``, then ``cli``.
"""

from cirlib.util.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.util.config": ["load_config"],
    "cirlib.data": ["CIRCO", "CIRR", "DatasetError", "FashionIQ", "read_gallery_captions"],
    "cirlib.data.synth": ["preset"],
    "cirlib.analysis.benchmark": ["prepare_benchmark"],
    "cirlib.encoders": ["describe", "load_encoder"],
    "cirlib.features": ["FeatureCache", "SplitFeatures", "encode_images", "encode_texts", "synth_captioned_splits"],
    "cirlib.fusion": ["ZERO_SHOT_BASELINES", "BilinearCombiner", "Combiner", "MoECombiner", "SumFusion",
                      "build_fusion"],
    "cirlib.index": ["build_index", "load_index"],
    "cirlib.evaluation": ["benchmark_features", "evaluate_methods", "format_results"],
    "cirlib.weimocir": ["PAPER_ALPHA", "PAPER_BETA", "best_cell", "held_out_choice", "sweep", "weighted_similarity"],
    "cirlib.experiments": ["run_fusion_job"],
    "cirlib.apps": ["DemoConfig", "run_demo"],
})
