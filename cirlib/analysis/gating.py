"""What a Mixture-of-Experts combiner's router does: expert use overall and per edit type.

Vocabulary: the *router weights* are the MoE's (N, E) expert mixing weights (top-k of a softmax); the *gate*
is only the vector gate g of the residual mix (the Combiner's λ, one weight per dimension).

Edit types come from ``cirlib.analysis.edits`` (the synthetic benchmark's ``synth_meta``). A query
with several types counts under each with weight 1/(number of its types), in the tables and in the
mutual information.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cirlib.analysis.edits import EditTypes
from cirlib.fusion.moe import MoECombiner
from cirlib.util.device import exact_float32


@torch.no_grad()
@exact_float32()  # the same routing on every device, as for every evaluation number
def routing_weights(model: MoECombiner, image: torch.Tensor, text: torch.Tensor,
                    disabled_experts: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, E) router weights and (N, D) vector gates g of ``model`` in eval mode, float32 on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    _, routing = model(image.to(device, torch.float32), text.to(device, torch.float32), return_routing=True,
                       disabled_experts=disabled_experts)
    return routing.weights.float().cpu(), routing.gate.float().cpu()


def utilisation(weights: torch.Tensor) -> dict[str, list[float]]:
    """Per expert: mean router weight, share of queries routed to it at all, share as the top expert."""
    experts = weights.shape[1]
    return {"mean router weight": weights.mean(dim=0).tolist(),
            "routed share": (weights > 0).float().mean(dim=0).tolist(),
            "top share": torch.bincount(weights.argmax(dim=1), minlength=experts).div(len(weights)).tolist()}


def _pairs(types: EditTypes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(type names, then per (query, type) pair: the query, the type's index, the weight 1/len(types))."""
    names = sorted({t for row in types for t in row})
    column = {n: i for i, n in enumerate(names)}
    query, type_index, weight = [], [], []
    for q, row in enumerate(types):
        for t in row:
            query.append(q), type_index.append(column[t]), weight.append(1.0 / len(row))
    return names, np.array(query, dtype=int), np.array(type_index, dtype=int), np.array(weight)


def router_weights_by_edit_type(weights: torch.Tensor, types: EditTypes) -> tuple[list[str], np.ndarray]:
    """(type names, (types, experts) mean router weight of the queries of each type)."""
    if len(types) != len(weights):
        raise ValueError(f"{len(types)} edit-type lists for {len(weights)} queries: one per query, in order")
    names, query, type_index, weight = _pairs(types)
    table, totals = np.zeros((len(names), weights.shape[1])), np.zeros(len(names))
    np.add.at(table, type_index, weight[:, None] * weights.numpy()[query])
    np.add.at(totals, type_index, weight)
    return names, table / totals[:, None]


def normalized_mutual_information(labels_a: Sequence, labels_b: Sequence,
                                  sample_weight: Sequence[float] | None = None) -> float:
    """NMI = 2 I(A;B) / (H(A) + H(B)) (scikit-learn's default, arithmetic normalisation), in [0, 1];
    0 when either labelling is constant."""
    a_names, a = np.unique(np.asarray(labels_a), return_inverse=True)
    b_names, b = np.unique(np.asarray(labels_b), return_inverse=True)
    weight = np.ones(len(a)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    joint = np.zeros((len(a_names), len(b_names)))
    np.add.at(joint, (a, b), weight)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    entropy = lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum())  # noqa: E731
    nonzero = joint > 0
    mutual = float((joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero])).sum())
    denominator = entropy(pa) + entropy(pb)
    return 0.0 if entropy(pa) == 0 or entropy(pb) == 0 else max(0.0, 2 * mutual / denominator)


def top_expert_edit_type_nmi(weights: torch.Tensor, types: EditTypes) -> float:
    """NMI between each query's top expert and its edit type(s) (multi-type queries split their weight)."""
    _, query, type_index, weight = _pairs(types)
    return normalized_mutual_information(weights.argmax(dim=1).numpy()[query], type_index, weight)


def expert_off_method(model: MoECombiner, expert: int):
    """An evaluation method ``(v, t) -> q`` of ``model`` with ``expert`` switched off (the router picks
    among the others)."""
    def method(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(image, text, disabled_experts=[expert]).float()
    return method


def top_expert_cause_nmi(weights: torch.Tensor, causes: Sequence[Sequence[str]]) -> float:
    """NMI between each query's top expert and its cause(s) of difficulty (``cirlib.analysis.edits.query_causes``;
    split weights as for edit types)."""
    return top_expert_edit_type_nmi(weights, [list(c) for c in causes])


def balance_summary(weights: torch.Tensor) -> dict[str, float]:
    """How evenly the router spreads N queries over E experts, three ways:

    - ``top share``: the largest share of queries any one expert is the top expert for (1/E balanced, 1 collapsed);
    - ``top entropy``: entropy of the top-expert distribution over log E (1 balanced, 0 collapsed);
    - ``importance CV``: coefficient of variation of the experts' mean router weight (0 balanced, sqrt(E-1)
      when one expert takes every weight).
    """
    experts = weights.shape[1]
    share = torch.bincount(weights.argmax(dim=1), minlength=experts).double() / len(weights)
    nonzero = share[share > 0]
    importance = weights.double().mean(dim=0)
    return {"top share": float(share.max()),
            "top entropy": abs(float((nonzero * nonzero.log()).sum() / np.log(experts))),  # abs: no -0.0
            "importance CV": float(importance.std(unbiased=False) / importance.mean())}
