"""Published numbers that `cirlib reproduce` prints beside the measured ones, keyed by the exact weights.

Quoted from the documents this project started from (``shared/seeds/``): the CLIP-CD paper's
Table 1 (FashionIQ val, CLIP RN50x4) and the WeiMoCIR slides' comparison tables (FashionIQ val
averages, CIRR; the slides do not name the CIRR split, and CIRR papers report test1). Keys are
``(dataset, method, Weights(model, pretrained))`` with open_clip's own strings, because the same
architecture with other weights gives other numbers: WeiMoCIR's CLIP rows use OpenCLIP's LAION-2B
weights, CLIP4Cir and CLIP-CD OpenAI's RN50x4. Values are metrics in percent, named as
``cirlib.metrics`` names them. Each paper's preprocessing is here too (:data:`PAPER_SETTINGS`).

The slides' "G/14, 1.37B params" rows are keyed twice: 1.37B parameters is ViT-g-14 (1,366.7M; ViT-bigG-14 has
2,539.6M), while the G/14 of the methods the slides compare with (LinCIR, CIReVL, LDRE) is ViT-bigG-14; the
slides name neither open_clip's architecture nor the tag, so the row is quoted for ViT-g-14's later LAION-2B
tag and for ViT-bigG-14, and prints that assumption (:data:`G14_NOTE`). Pic2Word, SEARLE and LinCIR rows are
quoted for comparison only (:data:`QUOTED_ONLY`).
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_DATASETS = ("fashioniq", "cirr", "circo")
ZERO_SHOT_METHODS = ("image-only", "text-only", "sum")
TRAINED_METHODS = ("combiner", "clip-cd", "moe")
METHODS = (*ZERO_SHOT_METHODS, "weimocir", *TRAINED_METHODS)
"""What ``cirlib reproduce`` runs (here, not in cirlib.experiments.reproduce, so the CLI parser needs no torch)."""
QUOTED_ONLY = ("pic2word", "searle", "lincir")
"""Methods whose paper numbers are quoted but that ``cirlib reproduce`` does not run: the numbers come from the
authors' inversion networks trained on real images or captions with OpenAI's ViT-L-14, while cirlib's inversion
jobs train on the synthetic pretraining stream and load no released checkpoint (README, *Reproducing the papers*)."""


@dataclass(frozen=True)
class Weights:
    """A CLIP as open_clip names it: ``open_clip.create_model(model, pretrained=pretrained)``."""

    model: str
    pretrained: str

    def __str__(self) -> str:
        return f"{self.model} {self.pretrained}"


@dataclass(frozen=True)
class PaperResult:
    metrics: dict[str, float]
    source: str
    split: str
    weights: Weights
    note: str = ""  # what else the paper did to get the number, printed beside it


@dataclass(frozen=True)
class PaperSetting:
    """How a paper ran a method: its weights per architecture (the first is the default) and its preprocessing."""

    weights: tuple[Weights, ...]
    preprocess: str


LAION_B32 = Weights("ViT-B-32", "laion2b_s34b_b79k")
LAION_L14 = Weights("ViT-L-14", "laion2b_s32b_b82k")
LAION_H14 = Weights("ViT-H-14", "laion2b_s32b_b79k")
LAION_G14 = Weights("ViT-g-14", "laion2b_s34b_b88k")
LAION_BIGG = Weights("ViT-bigG-14", "laion2b_s39b_b160k")
OPENAI_RN50X4 = Weights("RN50x4", "openai")
OPENAI_L14 = Weights("ViT-L-14", "openai")

# WeiMoCIR's code resizes and centre-crops.
_WEIMOCIR = PaperSetting((LAION_L14, LAION_B32, LAION_H14, LAION_G14, LAION_BIGG), "clip")
_CLIP4CIR = PaperSetting((OPENAI_RN50X4,), "targetpad")  # pads to an aspect ratio of 1.25, then resizes
PAPER_SETTINGS: dict[str, PaperSetting] = {
    **dict.fromkeys(ZERO_SHOT_METHODS, _WEIMOCIR),  # WeiMoCIR's special cases: beta 0, alpha 0, 1 or 1/2
    "weimocir": _WEIMOCIR,
    "combiner": _CLIP4CIR,
    "clip-cd": _CLIP4CIR,   # CLIP-CD follows CLIP4Cir: RN50x4, its preprocessing
    "moe": _CLIP4CIR,       # the MoE Combiner replaces CLIP4Cir's Combiner and keeps the rest
}
"""Per method ``cirlib reproduce`` runs: the paper's weights and preprocessing, its defaults."""

_CLIPCD = "CLIP-CD paper, Table 1"
_SLIDES = "WeiMoCIR slides, comparison tables"
_STAGE_1 = "after the paper's stage 1 fine-tuned these weights (configs/clipcd_rn50x4_fashioniq.yaml)"
G14_NOTE = ("the slides' 'G/14, 1.37B params': 1.37B is ViT-g-14's size, bigG has 2.54B; the slides name no tag, so "
            "this row is quoted for ViT-g-14 laion2b_s34b_b88k and ViT-bigG-14 laion2b_s39b_b160k alike")


_Entry = tuple[tuple[str, str, Weights], PaperResult]  # a PAPER_RESULTS item


def _quoted(dataset: str, method: str, weights: Weights, split: str, source: str, metrics: dict[str, float],
            note: str = "") -> _Entry:
    return (dataset, method, weights), PaperResult(metrics, source, split, weights, note)


def _weimocir_g14(dataset: str, split: str, metrics: dict[str, float]) -> list[_Entry]:
    """The slides' WeiMoCIR "G/14" row under both readings of G/14 (:data:`G14_NOTE`)."""
    return [_quoted(dataset, "weimocir", weights, split, _SLIDES, metrics, G14_NOTE)
            for weights in (LAION_G14, LAION_BIGG)]


PAPER_RESULTS: dict[tuple[str, str, Weights], PaperResult] = dict([
    _quoted("fashioniq", "combiner", OPENAI_RN50X4, "val", _CLIPCD, {
        "dress R@10": 33.81, "dress R@50": 59.40, "shirt R@10": 39.99, "shirt R@50": 60.45, "toptee R@10": 41.41,
        "toptee R@50": 65.37, "avg R@10": 38.52, "avg R@50": 61.74}),
    _quoted("fashioniq", "clip-cd", OPENAI_RN50X4, "val", _CLIPCD, {
        "dress R@10": 37.68, "dress R@50": 62.62, "shirt R@10": 42.44, "shirt R@50": 63.74, "toptee R@10": 45.33,
        "toptee R@50": 67.72, "avg R@10": 41.82, "avg R@50": 64.79}, _STAGE_1),
    _quoted("fashioniq", "weimocir", LAION_B32, "val", _SLIDES, {"avg R@10": 29.86, "avg R@50": 49.82}),
    _quoted("fashioniq", "weimocir", LAION_L14, "val", _SLIDES, {"avg R@10": 31.54, "avg R@50": 50.99}),
    *_weimocir_g14("fashioniq", "val", {"avg R@10": 37.03, "avg R@50": 57.29}),
    _quoted("fashioniq", "pic2word", OPENAI_L14, "val", _SLIDES, {"avg R@10": 24.70, "avg R@50": 43.70}),
    _quoted("fashioniq", "searle", OPENAI_L14, "val", _SLIDES, {"avg R@10": 27.61, "avg R@50": 47.90}),
    _quoted("fashioniq", "lincir", OPENAI_L14, "val", _SLIDES, {"avg R@10": 26.28, "avg R@50": 46.49}),
    _quoted("cirr", "weimocir", LAION_B32, "test1", _SLIDES,
            {"R@1": 26.31, "R@5": 57.69, "R@10": 70.36, "R@50": 91.01}),
    _quoted("cirr", "weimocir", LAION_L14, "test1", _SLIDES, {
        "R@1": 30.94, "R@5": 60.87, "R@10": 73.08, "R@50": 91.61, "Rsubset@1": 58.55, "Rsubset@2": 79.06,
        "Rsubset@3": 90.07}),
    _quoted("cirr", "weimocir", LAION_H14, "test1", _SLIDES, {
        "R@1": 29.11, "R@5": 59.76, "R@10": 72.34, "R@50": 91.18, "Rsubset@1": 57.23, "Rsubset@2": 79.08,
        "Rsubset@3": 89.76}),
    *_weimocir_g14("cirr", "test1", {
        "R@1": 31.04, "R@5": 60.41, "R@10": 72.27, "R@50": 90.89, "Rsubset@1": 58.84, "Rsubset@2": 78.92,
        "Rsubset@3": 89.64}),
    _quoted("cirr", "pic2word", OPENAI_L14, "test1", _SLIDES,
            {"R@1": 23.90, "R@5": 51.70, "R@10": 65.30, "R@50": 87.80}),
    _quoted("cirr", "searle", OPENAI_L14, "test1", _SLIDES,
            {"R@1": 24.87, "R@5": 52.31, "R@10": 66.29, "R@50": 88.58}),
    _quoted("cirr", "lincir", OPENAI_L14, "test1", _SLIDES, {"R@1": 25.04, "R@5": 53.25, "R@10": 66.68}),
])


def paper_result(dataset: str, method: str, model: str, pretrained: str | None) -> PaperResult | None:
    """The published result for exactly these weights, or None (other weights, or no number in the seeds)."""
    if pretrained is None:
        return None
    return PAPER_RESULTS.get((dataset, method, Weights(model, pretrained)))


def paper_weights(dataset: str, method: str) -> list[Weights]:
    """Every set of weights the seeds quote a result of ``method`` on ``dataset`` for."""
    return [weights for (d, m, weights) in PAPER_RESULTS if (d, m) == (dataset, method)]


def default_weights(method: str, model: str | None) -> Weights | None:
    """The paper's weights for ``method`` with the architecture ``model`` (None: the paper's first), or None
    when the paper used no weights of that architecture."""
    candidates = PAPER_SETTINGS[method].weights
    return next((w for w in candidates if model is None or w.model == model), None)
