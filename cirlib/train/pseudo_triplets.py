"""CLIP-CD's similarity-based pseudo triplets (Lin et al., section 3.2.3).

1. Image similarity constraint: each training image k gets a substitute set M_k of at most
   ``s_max`` other training images whose cosine similarity to it lies in [eps_low, eps_high]
   (the most similar first): close enough to fit the same query, not a near-duplicate.
2. A pseudo triplet replaces the reference by a member of its set, or the target by a member
   of its set; the text stays.
3. Triplet matching constraint: the stage-1 model (sum fusion of the fine-tuned encoder's
   features; any ``(v, t) -> q`` callable here) scores the pseudo query against the pseudo
   target; the triplet is kept when cos(q, target) > ``match_threshold`` (alpha).
4. Training alternates: ``every_k`` epochs on the real triplets, then one on the pseudo ones.

Paper settings: eps = [0.90, 0.995], s_max = 4, alpha = 0.6 (RN50x4 CLIP after stage 1). It
does not state k; ours defaults to 3. The thresholds are cosines of a particular encoder: check
the counts this module reports before trusting them on another one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cirlib.fusion import sum_fusion
from cirlib.train.triplets import TripletFeatures
from cirlib.util.config import setting, validate
from cirlib.util.errors import ConfigError


@dataclass
class PseudoTripletConfig:
    """CLIP-CD's augmentation settings (``pseudo_triplets:`` in a training config)."""

    eps_low: float = setting(0.90, minimum=-1, maximum=1)
    eps_high: float = setting(0.995, minimum=-1, maximum=1)
    s_max: int = setting(4, minimum=1)
    match_threshold: float = setting(0.6, minimum=-1, maximum=1)
    every_k: int = setting(3, minimum=1)

    def __post_init__(self) -> None:
        validate(self)
        if self.eps_low > self.eps_high:
            raise ConfigError(type(self).__name__, "eps_low", self.eps_low, f"<= eps_high ({self.eps_high})")


def substitutes(images: torch.Tensor, eps_low: float, eps_high: float, s_max: int,
                chunk: int = 4096) -> torch.Tensor:
    """(M, s_max) indices of each image's substitutes, most similar first; -1 pads a short set."""
    normed = F.normalize(images.float(), dim=-1)
    rows = []
    for start in range(0, len(normed), chunk):
        similarity = normed[start:start + chunk] @ normed.T
        own = torch.arange(start, start + len(similarity))
        similarity[torch.arange(len(similarity)), own] = float("-inf")
        similarity[(similarity < eps_low) | (similarity > eps_high)] = float("-inf")
        values, indices = similarity.topk(min(s_max, len(normed)), dim=1)
        rows.append(torch.where(values > float("-inf"), indices, -1))
    found = torch.cat(rows) if rows else torch.empty(0, s_max, dtype=torch.long)
    return F.pad(found, (0, s_max - found.shape[1]), value=-1)


def pseudo_triplets(data: TripletFeatures, config: PseudoTripletConfig,
                    stage1: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = sum_fusion
                    ) -> tuple[TripletFeatures, dict[str, int]]:
    """The pseudo triplets that pass both constraints, and counts (candidates, kept)."""
    sets = substitutes(data.images, config.eps_low, config.eps_high, config.s_max)
    triplet = torch.arange(len(data))
    new_reference, keep_reference = sets[data.reference], sets[data.reference] >= 0
    new_target, keep_target = sets[data.target], sets[data.target] >= 0
    source = torch.cat([triplet[:, None].expand_as(new_reference)[keep_reference],
                        triplet[:, None].expand_as(new_target)[keep_target]])
    reference = torch.cat([new_reference[keep_reference], data.reference[:, None].expand_as(new_target)[keep_target]])
    target = torch.cat([data.target[:, None].expand_as(new_reference)[keep_reference], new_target[keep_target]])
    text_of = data.text_of[source]
    with torch.no_grad():
        queries = stage1(data.images[reference], data.texts[text_of, 0])
        score = (F.normalize(queries, dim=-1) * F.normalize(data.images[target], dim=-1)).sum(dim=-1)
    kept = score > config.match_threshold
    pseudo = TripletFeatures(data.images, reference[kept], target[kept], data.texts, data.image_names, text_of[kept])
    return pseudo, {"candidates": len(source), "kept": int(kept.sum())}
