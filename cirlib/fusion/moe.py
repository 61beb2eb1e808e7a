"""A Mixture-of-Experts Combiner (after the CLIP4Cir-MoE project; re-implemented from its description).

Default design (the public code's configuration)::

    t' = Dropout0.5(ReLU(LayerNorm(Linear(D->P)(t))))      v' = likewise with its own layers
    [t'', v''] = LayerNorm([t', v'] + MultiheadAttention4([t', v']))   self-attention over 2 tokens
    h = [t'', v'']                                                       (2P, text first)
    router logits = Linear(2P->E)(h); hard top-k (k=2 of E=4), softmax over the k selected logits
    mixture = sum_e w_e * Dropout0.1(GELU(Linear(2P->H)(h)))             only the selected experts run
    base = Linear(H->D)(Dropout0.5(ReLU(mixture)))
    g = Sigmoid(Linear(H->D)(Dropout0.5(ReLU(Linear(2P->H)(h)))))        a vector gate, one weight per dim
    q = normalize(base + g * t + (1 - g) * v)                            raw t, v; no auxiliary loss

``projection_dim`` P and ``hidden_dim`` H default to 4*D and 8*D (CLIP4Cir's sizes). Dispatch is
vectorised: each expert runs once on the rows routed to it (the reference code loops over the
batch row by row; the result is the same). Parameters (``sum(p.numel())``, then active per query
with two of four experts): 167,194,884 / 114,755,844 at D=640 (P=2560, H=5120); 26,769,924 /
18,377,220 at D=256 with the same ratios (P=1024, H=2048); 1,974,276 / 1,448,964 at D=256, P=256,
H=512 (the synthetic-benchmark configs).

Our documented extensions, all off by default: ``routing="soft"`` (softmax over all experts, every
expert runs), ``router_noise`` (Gaussian noise of that std on the router logits while training: noisy
top-k gating with a fixed noise scale), ``load_balance_weight`` with ``balance_loss`` (the importance
loss of Shazeer et al., 2017, or the Switch Transformer's loss; :data:`BALANCE_LOSSES`) and
``z_loss_weight`` (ST-MoE's router z-loss), summed into ``Routing.aux_loss`` for the training loop to
add. ``forward(..., return_routing=True)`` always returns the routing statistics (logits, weights,
gate) for analysis, and ``disabled_experts`` switches experts off. The study of these options is
:mod:`cirlib.experiments.moe_study`. Expert-choice routing (experts pick their queries) is not offered: a query's
experts would depend on which other queries share its batch, so its retrieval result would change with
the evaluation's chunking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cirlib.fusion.combiner import projection, residual_mix

ROUTINGS = ("topk", "soft")


@dataclass
class Routing:
    """What the router did for a batch of N queries over E experts."""

    logits: torch.Tensor    # (N, E) router logits, after noise and switched-off experts (-inf)
    weights: torch.Tensor   # (N, E) mixing weights: k non-zeros per row (top-k) or all (soft); rows sum to 1
    gate: torch.Tensor      # (N, D) the vector gate g of the residual mix
    aux_loss: torch.Tensor  # scalar: the weighted balancing loss plus the weighted z-loss; 0 by default

    @property
    def top_expert(self) -> torch.Tensor:
        """(N,) the expert with the largest weight for each query."""
        return self.weights.argmax(dim=1)


def load_balancing_loss(weights: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation of the experts' importance (Shazeer et al., 2017).

    Importance of an expert = the sum of its mixing weights over the batch. The loss is 0 exactly
    when every expert carries the same total weight, and grows as the routing concentrates.
    """
    importance = weights.float().sum(dim=0)
    return importance.var(unbiased=False) / (importance.mean() ** 2 + 1e-10)


def switch_loss(weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The Switch Transformer's auxiliary loss: E * sum_e f_e * P_e (Fedus et al., 2021), 1 when balanced.

    f_e is the fraction of the batch's expert selections that go to expert e (not differentiable), P_e the
    mean router probability of e (softmax over all E logits; its gradient moves the router). With top-k
    routing each query makes k selections, so the f_e still sum to 1.
    """
    selected = (weights > 0).float()
    fraction = selected.sum(dim=0) / selected.sum()
    probability = torch.softmax(logits.float(), dim=-1).mean(dim=0)
    return logits.shape[1] * (fraction * probability).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss (Zoph et al., 2022): the mean squared log-sum-exp of the logits, which keeps
    them small (switched-off experts, at -inf, add nothing)."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


BALANCE_LOSSES = {"importance": lambda weights, logits: load_balancing_loss(weights), "switch": switch_loss}
"""The balancing losses ``load_balance_weight`` weighs: ``(weights, logits) -> scalar``."""


def route(logits: torch.Tensor, top_k: int, routing: str) -> torch.Tensor:
    """(N, E) float32 mixing weights: softmax over the top-k logits of each row (zeros elsewhere), or over all.

    Always float32, whatever the logits' precision: under CUDA autocast the router's logits are bf16
    while softmax returns float32 (CPU autocast keeps it bf16), so the dtype is fixed here, not left
    to the device. Widening bf16/fp16 to float32 is exact, so the top-k choice is unchanged.
    """
    logits = logits.float()
    if routing == "soft":
        return torch.softmax(logits, dim=-1)
    values, indices = logits.topk(top_k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, indices, torch.softmax(values, dim=-1))


class MoECombiner(nn.Module):
    """The Mixture-of-Experts Combiner (see the module docstring for the exact design)."""

    def __init__(self, embed_dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 num_experts: int = 4, top_k: int = 2, heads: int = 4, dropout: float = 0.5,
                 expert_dropout: float = 0.1, routing: str = "topk", router_noise: float = 0.0,
                 load_balance_weight: float = 0.0, balance_loss: str = "importance",
                 z_loss_weight: float = 0.0) -> None:
        super().__init__()
        projection_dim = projection_dim or 4 * embed_dim
        hidden_dim = hidden_dim or 8 * embed_dim
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}; use one of {', '.join(ROUTINGS)}")
        if balance_loss not in BALANCE_LOSSES:
            raise ValueError(f"unknown balance_loss {balance_loss!r}; use one of {', '.join(BALANCE_LOSSES)}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be between 1 and num_experts ({num_experts}), got {top_k}")
        if projection_dim % heads:
            raise ValueError(f"projection_dim ({projection_dim}) must be divisible by heads ({heads})")
        self.embed_dim, self.num_experts, self.top_k, self.routing = embed_dim, num_experts, top_k, routing
        self.router_noise, self.load_balance_weight = router_noise, load_balance_weight
        self.balance_loss, self.z_loss_weight = balance_loss, z_loss_weight
        self.text_projection = nn.Sequential(nn.Linear(embed_dim, projection_dim), nn.LayerNorm(projection_dim),
                                             nn.ReLU(), nn.Dropout(dropout))
        self.image_projection = nn.Sequential(nn.Linear(embed_dim, projection_dim), nn.LayerNorm(projection_dim),
                                              nn.ReLU(), nn.Dropout(dropout))
        self.attention = nn.MultiheadAttention(projection_dim, heads, batch_first=True)
        self.attention_norm = nn.LayerNorm(projection_dim)
        self.router = nn.Linear(2 * projection_dim, num_experts)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(2 * projection_dim, hidden_dim), nn.GELU(),
                                                   nn.Dropout(expert_dropout)) for _ in range(num_experts))
        self.output = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, embed_dim))
        self.gate = nn.Sequential(projection(2 * projection_dim, hidden_dim, dropout), nn.Linear(hidden_dim, embed_dim),
                                  nn.Sigmoid())

    def joint(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """h (N, 2P): the projected text and image after self-attention, text first."""
        tokens = torch.stack([self.text_projection(text), self.image_projection(image)], dim=1)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.attention_norm(tokens + attended).flatten(1)

    def router_logits(self, joint: torch.Tensor, disabled_experts: Sequence[int] = ()) -> torch.Tensor:
        logits = self.router(joint)
        if self.training and self.router_noise > 0:
            logits = logits + torch.randn_like(logits) * self.router_noise
        if disabled_experts:
            if self.num_experts - len(set(disabled_experts)) < self.top_k:
                raise ValueError(f"cannot switch off {sorted(set(disabled_experts))}: top-{self.top_k} routing "
                                 f"needs at least {self.top_k} of the {self.num_experts} experts")
            logits = logits.index_fill(1, torch.as_tensor(list(disabled_experts), device=logits.device),
                                       float("-inf"))
        return logits

    def mixture(self, joint: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_e w_e * expert_e(h), running each expert only on the rows that route to it.

        The sum accumulates in float32 (the weights' dtype) and comes back in the joint's dtype,
        which is what the next layer's parameters expect when the model itself is bf16/fp16.
        """
        out = torch.zeros(joint.shape[0], self.experts[0][0].out_features, dtype=torch.float32, device=joint.device)
        for index, expert in enumerate(self.experts):
            rows = weights[:, index].nonzero().squeeze(1)
            if rows.numel():
                out = out.index_add(0, rows, expert(joint[rows]).float() * weights[rows, index, None])
        return out.to(joint.dtype)

    def forward(self, image: torch.Tensor, text: torch.Tensor, return_routing: bool = False,
                disabled_experts: Sequence[int] = ()) -> torch.Tensor | tuple[torch.Tensor, Routing]:
        joint = self.joint(image, text)
        logits = self.router_logits(joint, disabled_experts)
        weights = route(logits, self.top_k, self.routing)
        base = self.output(self.mixture(joint, weights))
        gate = self.gate(joint)
        query = residual_mix(base, gate, image, text)
        if not return_routing:
            return query
        return query, Routing(logits=logits, weights=weights, gate=gate, aux_loss=self.auxiliary_loss(weights, logits))

    def auxiliary_loss(self, weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """load_balance_weight * the balancing loss + z_loss_weight * the z-loss (float32; 0 when both are off)."""
        aux = weights.new_zeros((), dtype=torch.float32)
        if self.load_balance_weight:
            aux = aux + self.load_balance_weight * BALANCE_LOSSES[self.balance_loss](weights, logits)
        if self.z_loss_weight:
            aux = aux + self.z_loss_weight * router_z_loss(logits)
        return aux
