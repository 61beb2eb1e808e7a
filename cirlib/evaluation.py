"""Evaluate query-fusion methods on the three benchmarks' evaluation splits, and print tables.

A method is any function ``(image_features, text_features) -> normalised queries``; retrieval is
cosine similarity against the normalised gallery, scored with ``cirlib.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import FashionIQ
from .encoders import FeatureCache, circo_features, cirr_features, fashioniq_features
from .encoders.features import SplitFeatures
from .encoders.loading import Encoder
from .metrics import circo_map, cirr_recall, fashioniq_recall, fashioniq_summary

Method = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def similarity(method: Method, features: SplitFeatures) -> torch.Tensor:
    """(Q, G) cosine similarity of the fused queries to the gallery."""
    return method(features.reference, features.text) @ F.normalize(features.gallery, dim=-1).T


def evaluate_fashioniq(split_features: Mapping[str, SplitFeatures], method: Method) -> dict[str, float]:
    per_category = {category: fashioniq_recall(similarity(method, f), f.gallery_names, f.target_names)
                    for category, f in split_features.items()}
    return fashioniq_summary(per_category)


def evaluate_cirr(features: SplitFeatures, method: Method) -> dict[str, float]:
    return cirr_recall(similarity(method, features), features.gallery_names, features.reference_names,
                       features.target_names, features.extra["img_set_members"])


def evaluate_circo(features: SplitFeatures, method: Method) -> dict[int, float]:
    return circo_map(similarity(method, features), features.gallery_names, features.extra["gt_img_ids"])


def benchmark_features(encoder: Encoder, cache: FeatureCache, benchmark: Path | str):
    """Features of the val splits of synth-fashioniq (per category), synth-cirr and synth-circo."""
    benchmark = Path(benchmark)
    fiq = {c: fashioniq_features(encoder, cache, benchmark / "synth-fashioniq", c, "val", dataset="synth-fashioniq")
           for c in FashionIQ.CATEGORIES}
    cirr = cirr_features(encoder, cache, benchmark / "synth-cirr", "val", dataset="synth-cirr")
    circo = circo_features(encoder, cache, benchmark / "synth-circo", "val", dataset="synth-circo")
    return fiq, cirr, circo


def evaluate_methods(features, methods: Mapping[str, Method]) -> dict[str, dict[str, dict]]:
    """{dataset: {method: metrics}} on the features from :func:`benchmark_features`."""
    fiq, cirr, circo = features
    return {"fashioniq": {name: evaluate_fashioniq(fiq, m) for name, m in methods.items()},
            "cirr": {name: evaluate_cirr(cirr, m) for name, m in methods.items()},
            "circo": {name: {f"mAP@{k}": v for k, v in evaluate_circo(circo, m).items()} for name, m in methods.items()}}


def format_table(results: Mapping[str, Mapping[str, float]], columns: list[str], title: str) -> str:
    """A fixed-width table: one row per method, the chosen metric columns."""
    width = max(len(name) for name in results) + 2
    lines = [title, "method".ljust(width) + "".join(c.rjust(max(9, len(c) + 2)) for c in columns)]
    for name, metrics in results.items():
        lines.append(name.ljust(width) + "".join(f"{metrics[c]:.2f}".rjust(max(9, len(c) + 2)) for c in columns))
    return "\n".join(lines)


FASHIONIQ_COLUMNS = ["dress R@10", "dress R@50", "shirt R@10", "shirt R@50", "toptee R@10", "toptee R@50",
                     "avg R@10", "avg R@50", "avg"]
CIRR_COLUMNS = ["R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3", "Avg"]
CIRCO_COLUMNS = ["mAP@5", "mAP@10", "mAP@25", "mAP@50"]


def format_results(results: dict[str, dict[str, dict]]) -> str:
    return "\n\n".join([format_table(results["fashioniq"], FASHIONIQ_COLUMNS, "synth-fashioniq (val), recall %"),
                        format_table(results["cirr"], CIRR_COLUMNS, "synth-cirr (val), recall %"),
                        format_table(results["circo"], CIRCO_COLUMNS, "synth-circo (val), mAP %")])
