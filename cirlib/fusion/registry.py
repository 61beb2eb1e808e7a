"""One door to every fusion module: ``build_fusion(name, embed_dim, **options)``.

Configs name a module and its options (``fusion: combiner``, ``fusion_options: {hidden_dim: 512}``);
an unknown name or option is an error that lists the valid ones.
"""

from __future__ import annotations

import inspect
import typing

import torch
from torch import nn

from cirlib.fusion.bilinear import BilinearCombiner
from cirlib.fusion.combiner import Combiner
from cirlib.fusion.moe import MoECombiner
from cirlib.fusion.sum import SumFusion

FUSIONS: dict[str, type[nn.Module]] = {"sum": SumFusion, "combiner": Combiner, "bilinear": BilinearCombiner,
                                       "moe": MoECombiner}


def _options_problem(name: str, options: dict) -> str | None:
    """Why ``options`` cannot configure fusion ``name`` (unknown name or option), or None."""
    if name not in FUSIONS:
        return f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}"
    valid = [p for p in inspect.signature(FUSIONS[name]).parameters if p != "embed_dim"]
    unknown = sorted(set(options) - set(valid), key=str)
    if unknown:
        return f"unknown option(s) {', '.join(map(str, unknown))} for fusion {name!r}; valid: {', '.join(valid)}"
    return None


def build_fusion(name: str, embed_dim: int, **options) -> nn.Module:
    """The fusion module ``name`` for ``embed_dim``-d features, with constructor ``options``."""
    problem = _options_problem(name, options)
    if problem:
        raise ValueError(problem)
    return FUSIONS[name](embed_dim, **options)


def option_types(name: str) -> dict[str, object]:
    """{option: type hint} of fusion ``name``'s constructor (all but ``embed_dim``), for config validation."""
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")
    hints = typing.get_type_hints(FUSIONS[name].__init__)
    return {p: hints.get(p, object) for p in inspect.signature(FUSIONS[name]).parameters if p != "embed_dim"}


def parameter_count(module: nn.Module) -> int:
    """sum(p.numel()) over all parameters."""
    return sum(p.numel() for p in module.parameters())


def fuse(model: nn.Module, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(queries, auxiliary loss or None) for any fusion module, also inside DistributedDataParallel."""
    inner = getattr(model, "module", model)
    if isinstance(inner, MoECombiner):
        query, routing = model(image, text, return_routing=True)
        return query, routing.aux_loss if inner.load_balance_weight or inner.z_loss_weight else None
    return model(image, text), None
