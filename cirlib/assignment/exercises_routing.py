"""Notebook 03's graded exercises: top-k routing weights, the load-balancing loss, NMI(top expert, edit type).

Expected values come from ``cirlib.fusion.moe.route``, ``cirlib.fusion.moe.load_balancing_loss`` and
``cirlib.analysis.gating.top_expert_edit_type_nmi`` at check time. Router logits are built without ties at the
k-th place (which expert torch.topk keeps there is not specified). Inputs derive from the seed only: public cases
use ``2 * seed``, hidden ones ``2 * seed + 1`` plus edge cases.
"""

from __future__ import annotations

import torch

from cirlib.analysis.gating import top_expert_edit_type_nmi
from cirlib.assignment.checks import Case, Exercise, register
from cirlib.fusion.moe import load_balancing_loss, route

EDIT_TYPES = ("add", "remove", "move", "count", "recolour", "background")
"""Edit-type names the NMI cases draw from (CIRR-style, as in notebook 03)."""


def _generator(seed: int, hidden: bool) -> torch.Generator:
    """Public and hidden cases of one variant draw from different streams."""
    return torch.Generator().manual_seed(2 * seed + int(hidden))


def routing_reference(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """(N, E) float32 router weights: softmax over each row's top-k logits, 0 elsewhere (``moe.route``)."""
    return route(logits, top_k, "topk")


def _logits(g: torch.Generator, queries: int, experts: int, scale: float = 1.0,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(queries, experts) logits with distinct values in each row: a random order of 0, 0.5, 1, ... (exact in
    bfloat16), times ``scale``, plus a per-row shift and, in float32, a little noise below half a step."""
    steps = torch.argsort(torch.rand(queries, experts, generator=g), dim=1).float() * 0.5
    shift = torch.randint(-4, 5, (queries, 1), generator=g) * 0.25
    noise = 0.2 * torch.rand(queries, experts, generator=g) if dtype == torch.float32 else 0.0
    return ((steps + shift + noise) * scale).to(dtype)


def routing_cases(seed: int, hidden: bool) -> list[Case]:
    """Top-2 of 4 and top-1 of 3; hidden: k = E, huge logits, bfloat16 logits, switched-off experts (-inf)."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((_logits(g, 6, 4), 2), "6 queries, top-2 of 4 experts"),
                Case((_logits(g, 5, 3, scale=3.0), 1), "5 queries, top-1 of 3 experts")]
    switched_off = _logits(g, 4, 5).index_fill(1, torch.tensor([0, 3]), float("-inf"))
    return [Case((_logits(g, 7, 6), 3), "7 queries, top-3 of 6 experts"),
            Case((_logits(g, 3, 4), 4), "k equal to the number of experts"),
            Case((_logits(g, 4, 4, scale=2000.0), 2), "logits in the thousands"),
            Case((_logits(g, 5, 4, dtype=torch.bfloat16), 2), "bfloat16 logits (the weights are float32)"),
            Case((switched_off, 2), "experts switched off (logit -inf)")]


def balance_reference(weights: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation of the experts' importance (``moe.load_balancing_loss``)."""
    return load_balancing_loss(weights)


def _one_hot(experts: torch.Tensor, count: int) -> torch.Tensor:
    """(N, count) float32 weights that put each query's whole weight on its expert."""
    return torch.nn.functional.one_hot(experts, count).float()


def balance_cases(seed: int, hidden: bool) -> list[Case]:
    """Top-2 and soft weights; hidden: perfectly balanced, collapsed, one query, float64, an unused expert."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((route(_logits(g, 16, 4, scale=2.0), 2, "topk"),), "16 queries, top-2 of 4 experts"),
                Case((route(_logits(g, 10, 3), 3, "soft"),), "10 queries, soft routing over 3 experts")]
    unused = route(_logits(g, 9, 5).index_fill(1, torch.tensor([2]), float("-inf")), 2, "topk")
    return [Case((route(_logits(g, 12, 6), 3, "topk"),), "12 queries, top-3 of 6 experts"),
            Case((_one_hot(torch.randperm(8, generator=g) % 4, 4),), "every expert carries the same weight"),
            Case((_one_hot(torch.zeros(6, dtype=torch.long), 4),), "one expert carries all the weight"),
            Case((route(_logits(g, 1, 4), 2, "topk"),), "one query"),
            Case((route(_logits(g, 10, 4), 2, "topk").double(),), "float64 weights (the loss is float32)"),
            Case((unused,), "an expert that is never chosen")]


def nmi_reference(weights: torch.Tensor, types: list[list[str]]) -> float:
    """NMI between each query's top expert and its edit types (``gating.top_expert_edit_type_nmi``)."""
    return top_expert_edit_type_nmi(weights, types)


def _types(g: torch.Generator, queries: int, kinds: int, most: int) -> list[list[str]]:
    """Per query, 1 to ``most`` distinct edit types among the first ``kinds`` of EDIT_TYPES."""
    sizes = torch.randint(1, most + 1, (queries,), generator=g).tolist()
    return [[EDIT_TYPES[i] for i in torch.randperm(kinds, generator=g)[:size].tolist()] for size in sizes]


def _linked(g: torch.Generator, types: list[list[str]], experts: int) -> torch.Tensor:
    """Top-2 router weights whose top expert follows each query's first edit type about half the time."""
    logits = _logits(g, len(types), experts)
    first = torch.tensor([EDIT_TYPES.index(row[0]) % experts for row in types])
    linked = torch.rand(len(types), generator=g) < 0.5
    return route(logits.index_put((torch.arange(len(types))[linked], first[linked]), torch.tensor(9.0)), 2, "topk")


def nmi_cases(seed: int, hidden: bool) -> list[Case]:
    """One and several types per query; hidden: collapsed router, the expert determines the type, tied top
    weights, a single edit type."""
    g = _generator(seed, hidden)
    if not hidden:
        one = _types(g, 12, 4, 1)
        several = _types(g, 14, 5, 2)
        return [Case((_linked(g, one, 3), one), "12 queries, 3 experts, one edit type each"),
                Case((_linked(g, several, 4), several), "14 queries, 4 experts, one or two edit types each")]
    mixed, collapsed, single = _types(g, 10, 6, 3), _types(g, 8, 4, 2), _types(g, 6, 1, 1)
    determined = [[EDIT_TYPES[e]] for e in torch.randint(4, (9,), generator=g).tolist()]
    tied = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.2, 0.8, 0.0]])
    return [Case((_linked(g, mixed, 4), mixed), "10 queries, 4 experts, one to three edit types each"),
            Case((_one_hot(torch.full((8,), 2), 4), collapsed), "one expert is the top expert for every query"),
            Case((_one_hot(torch.tensor([EDIT_TYPES.index(row[0]) for row in determined]), 4), determined),
                 "the top expert determines the edit type"),
            Case((tied, [["add"], ["move"], ["add"], ["count", "move"]]), "tied top weights"),
            Case((_linked(g, single, 3), single), "a single edit type")]


TOP_K_ROUTING = register(Exercise("top_k_routing", routing_cases, routing_reference))
LOAD_BALANCE_LOSS = register(Exercise("load_balance_loss", balance_cases, balance_reference))
TOP_EXPERT_NMI = register(Exercise("top_expert_nmi", nmi_cases, nmi_reference))
