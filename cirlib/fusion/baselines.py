"""Zero-shot baselines: the reference image alone, the text alone, and their sum.

Each maps raw encoder features (N, D) to L2-normalised queries (N, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_only(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return F.normalize(image, dim=-1)


def text_only(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return F.normalize(text, dim=-1)


def sum_fusion(image: torch.Tensor, text: torch.Tensor, normalize_inputs: bool = False) -> torch.Tensor:
    """normalize(v + t). CLIP4Cir's baseline sums the raw features (the default); with
    ``normalize_inputs`` each is normalised first, so both modalities weigh the same."""
    if normalize_inputs:
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return F.normalize(image + text, dim=-1)


ZERO_SHOT_BASELINES = {"image only": image_only, "text only": text_only, "sum": sum_fusion,
                       "sum (normalised inputs)": lambda v, t: sum_fusion(v, t, normalize_inputs=True)}
