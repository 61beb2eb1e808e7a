"""Published numbers that `cirlib reproduce` prints beside the measured ones.

Quoted from the documents this project started from (``shared/seeds/``): the CLIP-CD paper's
Table 1 (FashionIQ val, CLIP RN50x4) and the WeiMoCIR slides' comparison tables (FashionIQ val
averages, CIRR; the slides do not name the CIRR split, and CIRR papers report test1). Keys are ``(dataset, method, backbone)``; values are metrics in percent, named
as ``cirlib.metrics`` names them.
"""

from __future__ import annotations

from dataclasses import dataclass


DATASETS = ("fashioniq", "cirr", "circo")
ZERO_SHOT_METHODS = ("image-only", "text-only", "sum")
TRAINED_METHODS = ("combiner", "clip-cd", "moe")
METHODS = (*ZERO_SHOT_METHODS, "weimocir", *TRAINED_METHODS)
"""What ``cirlib reproduce`` runs (here, not in cirlib.reproduce, so the CLI parser needs no torch)."""


@dataclass(frozen=True)
class PaperResult:
    metrics: dict[str, float]
    source: str
    split: str


_CLIPCD = "CLIP-CD paper, Table 1"
_WEIMOCIR = "WeiMoCIR slides, comparison tables"

PAPER_RESULTS: dict[tuple[str, str, str], PaperResult] = {
    ("fashioniq", "combiner", "RN50x4"): PaperResult(
        {"dress R@10": 33.81, "dress R@50": 59.40, "shirt R@10": 39.99, "shirt R@50": 60.45,
         "toptee R@10": 41.41, "toptee R@50": 65.37, "avg R@10": 38.52, "avg R@50": 61.74}, _CLIPCD, "val"),
    ("fashioniq", "clip-cd", "RN50x4"): PaperResult(
        {"dress R@10": 37.68, "dress R@50": 62.62, "shirt R@10": 42.44, "shirt R@50": 63.74,
         "toptee R@10": 45.33, "toptee R@50": 67.72, "avg R@10": 41.82, "avg R@50": 64.79}, _CLIPCD, "val"),
    ("fashioniq", "weimocir", "ViT-B-32"): PaperResult({"avg R@10": 29.86, "avg R@50": 49.82}, _WEIMOCIR, "val"),
    ("fashioniq", "weimocir", "ViT-L-14"): PaperResult({"avg R@10": 31.54, "avg R@50": 50.99}, _WEIMOCIR, "val"),
    ("fashioniq", "weimocir", "ViT-bigG-14"): PaperResult({"avg R@10": 37.03, "avg R@50": 57.29}, _WEIMOCIR, "val"),
    ("fashioniq", "pic2word", "ViT-L-14"): PaperResult({"avg R@10": 24.70, "avg R@50": 43.70}, _WEIMOCIR, "val"),
    ("fashioniq", "searle", "ViT-L-14"): PaperResult({"avg R@10": 27.61, "avg R@50": 47.90}, _WEIMOCIR, "val"),
    ("fashioniq", "lincir", "ViT-L-14"): PaperResult({"avg R@10": 26.28, "avg R@50": 46.49}, _WEIMOCIR, "val"),
    ("cirr", "weimocir", "ViT-B-32"): PaperResult({"R@1": 26.31, "R@5": 57.69, "R@10": 70.36, "R@50": 91.01},
                                                  _WEIMOCIR, "test1"),
    ("cirr", "weimocir", "ViT-L-14"): PaperResult(
        {"R@1": 30.94, "R@5": 60.87, "R@10": 73.08, "R@50": 91.61, "Rsubset@1": 58.55, "Rsubset@2": 79.06,
         "Rsubset@3": 90.07}, _WEIMOCIR, "test1"),
    ("cirr", "weimocir", "ViT-bigG-14"): PaperResult(
        {"R@1": 31.04, "R@5": 60.41, "R@10": 72.27, "R@50": 90.89, "Rsubset@1": 58.84, "Rsubset@2": 78.92,
         "Rsubset@3": 89.64}, _WEIMOCIR, "test1"),
    ("cirr", "pic2word", "ViT-L-14"): PaperResult({"R@1": 23.90, "R@5": 51.70, "R@10": 65.30, "R@50": 87.80},
                                                  _WEIMOCIR, "test1"),
    ("cirr", "searle", "ViT-L-14"): PaperResult({"R@1": 24.87, "R@5": 52.31, "R@10": 66.29, "R@50": 88.58},
                                                _WEIMOCIR, "test1"),
    ("cirr", "lincir", "ViT-L-14"): PaperResult({"R@1": 25.04, "R@5": 53.25, "R@10": 66.68}, _WEIMOCIR, "test1"),
}


def paper_result(dataset: str, method: str, backbone: str) -> PaperResult | None:
    """The published result for this setting, or None when the seeds report none."""
    return PAPER_RESULTS.get((dataset, method, backbone))
