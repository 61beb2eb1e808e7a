"""The mapping network phi: a CLIP feature (image or text) -> a pseudo-word token embedding.

One small MLP serves all three methods; only the defaults differ:

* Pic2Word's ``IM2TEXT``: Linear -> Dropout -> ReLU per hidden layer, hidden width = input width,
  dropout 0.1, then a Linear to the token width.
* SEARLE's and LinCIR's ``Phi``: Linear -> GELU -> Dropout, twice, hidden width 4x the input,
  dropout 0.5, then a Linear to the token width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclass
class PhiConfig:
    """Sizes of phi; saved in every checkpoint record so :func:`build_phi` can rebuild it."""

    input_dim: int
    output_dim: int
    hidden_dim: int
    hidden_layers: int = 2
    dropout: float = 0.5
    activation: str = "gelu"
    dropout_first: bool = False  # Pic2Word orders each block Linear, Dropout, ReLU

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}")
        if self.hidden_layers < 1:
            raise ValueError(f"hidden_layers must be >= 1, got {self.hidden_layers}")


class Phi(nn.Module):
    """MLP from a (B, input_dim) feature to a (B, output_dim) pseudo-word embedding."""

    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.input_dim
        for _ in range(config.hidden_layers):
            block = [nn.Dropout(config.dropout), ACTIVATIONS[config.activation]()]
            layers += [nn.Linear(width, config.hidden_dim), *(block if config.dropout_first else block[::-1])]
            width = config.hidden_dim
        layers.append(nn.Linear(width, config.output_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def build_phi(config: PhiConfig | dict) -> Phi:
    """A randomly initialised phi from its config (or the config's dict from a checkpoint record)."""
    return Phi(config if isinstance(config, PhiConfig) else PhiConfig(**config))


def phi_record(phi: Phi) -> dict:
    return asdict(phi.config)
