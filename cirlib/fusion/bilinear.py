"""CLIP-CD's fusion (Lin et al.): the Combiner plus a bilinear-pooling branch.

Design::

    f_I = ReLU(Linear(D->K)(v))     f_T = ReLU(Linear(D->K)(t))            K < D
    f_bil = flatten(f_I outer f_T)                                          (K*K)
    f_out = Linear(B->D)(ReLU(Linear(K*K->B)(f_bil)))
    q = normalize(Combiner's branch + lambda*t + (1-lambda)*v + f_out)

The paper gives neither K nor the output block's hidden size B; ours default to K = 64 and
B = D, and there is no dropout in the bilinear branch (the paper names none). Parameters
(``sum(p.numel())``): 62,117,889 at D=640 (P=2560, H=5120, K=64, B=640); 10,593,153 at D=256
with the CLIP4Cir ratios (P=1024, H=2048, K=64, B=256); 1,936,257 at D=256, P=256, H=512, K=64,
B=256 (the synthetic-benchmark configs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cirlib.fusion.combiner import Combiner


class BilinearPooling(nn.Module):
    """The bilinear branch alone: (v, t) -> f_out (N, D)."""

    def __init__(self, embed_dim: int, bilinear_dim: int = 64, bilinear_hidden: int | None = None) -> None:
        super().__init__()
        if bilinear_dim >= embed_dim:
            raise ValueError(f"bilinear_dim ({bilinear_dim}) must be below the feature size {embed_dim} (K < D)")
        self.image_projection = nn.Linear(embed_dim, bilinear_dim)
        self.text_projection = nn.Linear(embed_dim, bilinear_dim)
        hidden = bilinear_hidden or embed_dim
        self.output = nn.Sequential(nn.Linear(bilinear_dim * bilinear_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, embed_dim))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        f_image, f_text = F.relu(self.image_projection(image)), F.relu(self.text_projection(text))
        return self.output(torch.einsum("ni,nj->nij", f_image, f_text).flatten(1))


class BilinearCombiner(Combiner):
    """Combiner + bilinear pooling (see the module docstring for the exact design)."""

    def __init__(self, embed_dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5, bilinear_dim: int = 64, bilinear_hidden: int | None = None) -> None:
        super().__init__(embed_dim, projection_dim, hidden_dim, dropout)
        self.bilinear = BilinearPooling(embed_dim, bilinear_dim, bilinear_hidden)

    def unnormalized(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return super().unnormalized(image, text) + self.bilinear(image, text)
