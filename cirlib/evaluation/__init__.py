"""Evaluation of fusion methods on a benchmark's val splits: queries through an index, the datasets' metrics, tables."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.evaluation.evaluate": ["benchmark_features", "evaluate_methods", "evaluate_split", "format_results"],
})
