"""CLIP4Cir's Combiner (Baldrati et al., CVPR-W 2022), sizes as parameters.

Design (text first everywhere, as in the reference code)::

    t' = Dropout(ReLU(Linear(D->P)(t)))          v' = Dropout(ReLU(Linear(D->P)(v)))
    c  = [t', v']                                 (2P)
    branch = Linear(H->D)(Dropout(ReLU(Linear(2P->H)(c))))
    lambda = Sigmoid(Linear(H->1)(Dropout(ReLU(Linear(2P->H)(c)))))     a scalar per query
    q = normalize(branch + lambda * t + (1 - lambda) * v)                 raw t, v in the residual

All dropouts are 0.5 by default. CLIP4Cir fixes P = 2560 and H = 5120 (4x and 8x RN50x4's
D = 640); here ``projection_dim`` and ``hidden_dim`` default to 4*D and 8*D. Parameters
(``sum(p.numel())``): 59,003,521 at D=640 (P=2560, H=5120); 9,445,633 at D=256 with the CLIP4Cir
ratios (P=1024, H=2048); 788,737 at D=256, P=256, H=512 (the synthetic-benchmark configs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def projection(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout, the Combiner's building block."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))


def residual_mix(branch: torch.Tensor, gate: torch.Tensor, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """normalize(branch + gate * t + (1 - gate) * v); ``gate`` is (N, 1) (Combiner) or (N, D) (MoE)."""
    return F.normalize(branch + gate * text + (1 - gate) * image, dim=-1)


class Combiner(nn.Module):
    """CLIP4Cir's stage-2 fusion network (see the module docstring for the exact design)."""

    def __init__(self, embed_dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5) -> None:
        super().__init__()
        projection_dim = projection_dim or 4 * embed_dim
        hidden_dim = hidden_dim or 8 * embed_dim
        self.embed_dim = embed_dim
        self.text_projection = projection(embed_dim, projection_dim, dropout)
        self.image_projection = projection(embed_dim, projection_dim, dropout)
        self.combiner = projection(2 * projection_dim, hidden_dim, dropout)
        self.output = nn.Linear(hidden_dim, embed_dim)
        self.dynamic_scalar = nn.Sequential(projection(2 * projection_dim, hidden_dim, dropout),
                                            nn.Linear(hidden_dim, 1), nn.Sigmoid())

    def unnormalized(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """branch + lambda * t + (1 - lambda) * v before the final normalisation."""
        joint = torch.cat([self.text_projection(text), self.image_projection(image)], dim=-1)
        scalar = self.dynamic_scalar(joint)
        return self.output(self.combiner(joint)) + scalar * text + (1 - scalar) * image

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.unnormalized(image, text), dim=-1)
