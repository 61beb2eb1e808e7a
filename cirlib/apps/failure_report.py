"""Failure analysis of the demo's methods (notebook 05): the best trained and the best training-free
method per dataset, and every val query's outcome under both, beside its edit types and causes.

    from cirlib.apps.demo import DemoConfig, run_demo
    from cirlib.apps.failure_report import demo_outcomes
    result = run_demo(DemoConfig())
    frame, methods = demo_outcomes(result, "cirr")     # methods: (trained, training-free) row names
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cirlib.analysis.edits import query_groups
from cirlib.analysis.failures import method_scores, query_outcomes
from cirlib.apps.demo import DEMO_DATASETS, DemoResult
from cirlib.experiments.jobs import fusion_method
from cirlib.features.captions import split_features
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.metrics.protocols import protocol
from cirlib.train.stage2 import LAST, load_trained_fusion


def best_methods(result: DemoResult, dataset: str) -> tuple[str, str]:
    """(best trained row, best training-free row) of the demo's table, by the dataset's selection metric; WeiMoCIR's
    upper-bound row (chosen on val itself) is no method and never the training-free one."""
    rows, metric = result.tables[dataset], protocol(dataset).select_by
    trained = [name for name in rows if any(name in runs for runs in result.runs.values())]
    free = [name for name in rows if name not in trained and name != result.upper_bound_label(dataset)]
    return max(trained, key=lambda m: rows[m][metric]), max(free, key=lambda m: rows[m][metric])


def demo_outcomes(result: DemoResult, dataset: str, k: int = 5) -> tuple[pd.DataFrame, tuple[str, str]]:
    """(one row per val query with both best methods' ranks and top-``k`` names, (trained, training-free))."""
    trained, free = best_methods(result, dataset)
    split = result.splits[dataset]
    features = split_features(split)
    model, _ = load_trained_fusion(Path(result.runs[dataset][trained]) / LAST, device="cpu")
    scores = {trained: method_scores(fusion_method(model), features)}
    if free == result.weimocir_label(dataset):
        scores[free] = result.weimocir_scores(dataset)
    else:
        scores[free] = method_scores(ZERO_SHOT_BASELINES[free], features)
    rules = protocol(dataset)
    texts = {c: f.query_texts for c, f in features.items()} if rules.has_categories else features.query_texts
    types, causes = query_groups(dataset, Path(result.config.benchmark) / DEMO_DATASETS[dataset], texts)
    frame = query_outcomes(features, scores, types, causes, exclude_reference=rules.removes_reference(), k=k)
    return frame, (trained, free)
