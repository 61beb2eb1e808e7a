"""The sum baseline as a fusion module: normalize(v + t), no parameters."""

from __future__ import annotations

import torch
from torch import nn

from cirlib.fusion.baselines import sum_fusion


class SumFusion(nn.Module):
    """q = normalize(v + t) over the raw encoder features (CLIP4Cir's baseline and the fusion of its
    and CLIP-CD's stage 1). ``normalize_inputs`` normalises v and t first so both weigh the same.
    It has no parameters: stage-2 training leaves it as it is (0 parameters at every size). ``embed_dim`` is
    accepted, not used: :func:`~cirlib.fusion.registry.build_fusion` passes the feature size to every fusion."""

    def __init__(self, embed_dim: int | None = None, normalize_inputs: bool = False) -> None:
        super().__init__()
        self.normalize_inputs = normalize_inputs

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return sum_fusion(image, text, normalize_inputs=self.normalize_inputs)
