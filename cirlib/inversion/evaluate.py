"""Zero-shot CIR by textual inversion: build the queries and score them like every other method.

A query is the text feature of "a photo of $ that <modification>" with the reference image's
pseudo-word in the placeholder. :func:`inversion_method` binds that to one split's query texts
and returns a ``cirlib.evaluation.evaluate.Method``; :func:`evaluate_inversion` composes the queries of
every val split once and scores them through ``cirlib.evaluation.evaluate.evaluate_methods`` (the composed
query *is* a text feature, so it is scored as the text-only method on the composed features),
giving results in the same format as the baselines and fusion models.

FashionIQ's query text (``fashioniq_orders``): "single", CLIP4Cir's "<C1> and <c2>" (the default), or
"both", SEARLE's protocol: the query composed with both caption orders ("<C1> and <c2>", "<C2> and <c1>")
and the normalised mean of the two normalised features. CIRR and CIRCO have one text per query.

Inverters (image features -> pseudo-words) come from a trained run (:func:`load_inverter`): phi
for Pic2Word, SEARLE-XL and LinCIR, or OTI for "SEARLE (OTI)", which optimises each distinct
reference image at query time with the SEARLE run's OTI settings.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from cirlib.data import fashioniq_query_texts_both_orders
from cirlib.encoders.loading import Encoder
from cirlib.evaluation.evaluate import Method, evaluate_methods
from cirlib.features.splits import SplitFeatures
from cirlib.fusion import text_only
from cirlib.inversion.inject import PromptEncoder
from cirlib.inversion.loop import load_phi
from cirlib.inversion.mapping import Phi
from cirlib.inversion.searle import ConceptBank, SearleConfig, oti
from cirlib.metrics.protocols import PROTOCOLS
from cirlib.util.errors import ConfigError

Inverter = Callable[[torch.Tensor], torch.Tensor]  # (N, D) image features -> (N, width) pseudo-words
FASHIONIQ_ORDERS = ("single", "both")
"""FashionIQ's query text at evaluation: CLIP4Cir's single form (the default) or SEARLE's both orders."""


def phi_inverter(phi: Phi, normalize_input: bool = False, batch_size: int = 4096) -> Inverter:
    """Pseudo-words from a trained phi (in eval mode, no gradients, in batches), on the CPU."""
    device = next(phi.parameters()).device

    @torch.no_grad()
    def invert(features: torch.Tensor) -> torch.Tensor:
        chunks = []
        for start in range(0, len(features), batch_size):
            x = features[start:start + batch_size].to(device).float()
            chunks.append(phi(F.normalize(x, dim=-1) if normalize_input else x).float().cpu())
        return torch.cat(chunks)
    return invert


def load_inverter(run: Path | str, encoder: Encoder, use_oti: bool = False, progress: bool = True) -> Inverter:
    """The inverter of a trained run folder; ``use_oti`` (SEARLE runs only) gives OTI instead of phi, with a
    progress bar over its batches when ``progress``."""
    phi, record = load_phi(run, encoder.device)
    if record["encoder"] != encoder.identity:
        raise ValueError(f"{run} was trained with encoder {record['encoder']}, not {encoder.identity}: "
                         "load the same encoder (model and weights) or retrain the run")
    if not use_oti:
        return phi_inverter(phi, record.get("input_normalize", False))
    if record["method"] != "searle":
        raise ValueError(f"{run} is a {record['method']} run; OTI settings come from a searle run")
    config = SearleConfig(**record["config"])
    prompts = PromptEncoder.from_encoder(encoder, config.placeholder)
    bank = ConceptBank(prompts, config.phrases_per_concept, seed=config.seed)
    return lambda features: oti(prompts, bank, features, config, seed=config.seed, progress=progress)


def invert_unique(invert: Inverter, features: torch.Tensor) -> torch.Tensor:
    """``invert`` applied once per distinct row (references repeat across queries; OTI is costly)."""
    unique, inverse = torch.unique(features, dim=0, return_inverse=True)
    return invert(unique)[inverse]


def inversion_method(prompts: PromptEncoder, invert: Inverter, texts: Sequence[str], template: str,
                     flipped: Sequence[str] | None = None) -> Method:
    """A ``Method`` for one split: reference features -> pseudo-words -> ``template`` filled with
    ``texts`` (the split's query texts, row-aligned) -> normalised query features. ``flipped``: the same
    queries' texts in the other caption order (SEARLE's FashionIQ protocol); each query is then the normalised
    mean of the two orders' normalised features, from one inversion per reference."""
    def method(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        words = invert_unique(invert, image_features)
        queries = prompts.compose(words, texts, template)
        return queries if flipped is None else F.normalize(queries + prompts.compose(words, flipped, template), dim=-1)
    return method


def both_orders(features: SplitFeatures) -> tuple[list[str], list[str]]:
    """A FashionIQ split's query texts in both caption orders, from ``extra["captions"]`` (``fashioniq_features``)."""
    if "captions" not in features.extra:
        raise ConfigError("the split's features", 'extra["captions"]', None,
                          "each query's two captions (FashionIQ features from cirlib.features.fashioniq_features)")
    pairs = [fashioniq_query_texts_both_orders(captions) for captions in features.extra["captions"]]
    return [first for first, _ in pairs], [second for _, second in pairs]


def compose_split(features: SplitFeatures, prompts: PromptEncoder, invert: Inverter, template: str,
                  fashioniq_orders: str = "single") -> SplitFeatures:
    """``features`` with the text features replaced by the composed queries; ``fashioniq_orders="both"``: a
    FashionIQ split's queries by SEARLE's two-order protocol (module docstring)."""
    if fashioniq_orders not in FASHIONIQ_ORDERS:
        raise ConfigError("the query text", "fashioniq_orders", fashioniq_orders,
                          "'single' (CLIP4Cir's query text) or 'both' (SEARLE's two caption orders)")
    texts, flipped = both_orders(features) if fashioniq_orders == "both" else (features.query_texts, None)
    method = inversion_method(prompts, invert, texts, template, flipped)
    return dataclasses.replace(features, text=method(features.reference, features.text))


def evaluate_inversion(features, prompts: PromptEncoder, inverters: Mapping[str, Inverter],
                       template: str = "a photo of $ that {}",
                       fashioniq_orders: str = "single") -> tuple[dict[str, dict[str, dict]], dict[str, float]]:
    """({dataset: {method: metrics}}, {method: seconds to build the queries}) on the features from
    ``cirlib.evaluation.evaluate.benchmark_features``, for each named inverter; ``fashioniq_orders``: "single"
    (CLIP4Cir's query text) or "both" (SEARLE's protocol; module docstring)."""
    fiq, cirr, circo = features
    results: dict[str, dict[str, dict]] = {name: {} for name in PROTOCOLS}
    seconds = {}
    for name, invert in inverters.items():
        started = time.perf_counter()
        composed = ({c: compose_split(f, prompts, invert, template, fashioniq_orders) for c, f in fiq.items()},
                    compose_split(cirr, prompts, invert, template), compose_split(circo, prompts, invert, template))
        seconds[name] = time.perf_counter() - started
        for dataset, by_method in evaluate_methods(composed, {name: text_only}).items():
            results[dataset].update(by_method)
    return results, seconds
