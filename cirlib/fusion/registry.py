"""One door to every fusion module: ``build_fusion(name, embed_dim, **options)``.

Configs name a module and its options (``fusion: combiner``, ``fusion_options: {hidden_dim: 512}``);
an unknown name or option is an error that lists the valid ones.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .bilinear import BilinearCombiner
from .combiner import Combiner
from .moe import MoECombiner
from .sum import SumFusion

FUSIONS: dict[str, type[nn.Module]] = {"sum": SumFusion, "combiner": Combiner, "bilinear": BilinearCombiner,
                                       "moe": MoECombiner}


def build_fusion(name: str, embed_dim: int, **options) -> nn.Module:
    """The fusion module ``name`` for ``embed_dim``-d features, with constructor ``options``."""
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")
    cls = FUSIONS[name]
    valid = [p for p in inspect.signature(cls).parameters if p != "embed_dim"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for fusion {name!r}; valid: {', '.join(valid)}")
    return cls(embed_dim, **options)


def parameter_count(module: nn.Module) -> int:
    """sum(p.numel()) over all parameters."""
    return sum(p.numel() for p in module.parameters())


def fuse(model: nn.Module, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(queries, auxiliary loss or None) for any fusion module, also inside DistributedDataParallel."""
    inner = getattr(model, "module", model)
    if isinstance(inner, MoECombiner):
        query, routing = model(image, text, return_routing=True)
        return query, routing.aux_loss if inner.load_balance_weight else None
    return model(image, text), None
