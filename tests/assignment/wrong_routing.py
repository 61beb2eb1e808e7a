"""Known-wrong answers to notebook 03's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import numpy as np
import torch


def routing_not_renormalised(logits, top_k):
    """Softmax over every expert, then the others zeroed: the kept weights do not sum to 1."""
    z = logits.float()
    experts = z.topk(top_k, dim=1).indices
    return torch.zeros_like(z).scatter(1, experts, torch.softmax(z, dim=1).gather(1, experts))


def routing_without_max_shift(logits, top_k):
    """exp of the raw logits: overflows to inf / inf = nan for logits in the thousands."""
    z = logits.float()
    values, experts = z.topk(top_k, dim=1)
    kept = torch.exp(values)
    return torch.zeros_like(z).scatter(1, experts, kept / kept.sum(dim=1, keepdim=True))


def routing_in_input_precision(logits, top_k):
    """Right for float32 logits, but returns bfloat16 weights for bfloat16 logits."""
    values, experts = logits.topk(top_k, dim=1)
    return torch.zeros_like(logits).scatter(1, experts, torch.softmax(values, dim=1))


def _balance(importance: torch.Tensor, unbiased: bool = False, squared: bool = True) -> torch.Tensor:
    """Var / mean^2 of the importance; the mistakes: E - 1 in the variance, or std / mean (not squared)."""
    if squared:
        return importance.var(unbiased=unbiased) / (importance.mean() ** 2 + 1e-10)
    return importance.std(unbiased=unbiased) / importance.mean()


def balance_sample_variance(weights):
    return _balance(weights.float().sum(0), unbiased=True)


def balance_not_squared(weights):
    return _balance(weights.float().sum(0), squared=False)


def balance_counting_queries(weights):
    """Importance = how many queries an expert receives, not their total weight."""
    return _balance((weights.float() > 0).float().sum(0))


def _nmi(top: list[int], types: list[list[str]], split_weight: bool = True, geometric: bool = False) -> float:
    """NMI of (top expert, type) pairs; the mistakes: every pair weight 1, or sqrt(H(A) H(B)) as normaliser."""
    names = sorted({name for row in types for name in row})
    joint = np.zeros((max(top) + 1, len(names)))
    for expert, row in zip(top, types):
        for name in row:
            joint[expert, names.index(name)] += 1 / len(row) if split_weight else 1
    joint /= joint.sum()
    p_a, p_b = joint.sum(1), joint.sum(0)
    h_a, h_b = (float(-(p[p > 0] * np.log(p[p > 0])).sum()) for p in (p_a, p_b))
    if h_a == 0 or h_b == 0:
        return 0.0
    nonzero = joint > 0
    mutual = float((joint[nonzero] * np.log(joint[nonzero] / np.outer(p_a, p_b)[nonzero])).sum())
    return mutual / np.sqrt(h_a * h_b) if geometric else 2 * mutual / (h_a + h_b)


def nmi_unweighted_pairs(weights, types):
    return _nmi(weights.argmax(1).tolist(), types, split_weight=False)


def nmi_geometric_normalisation(weights, types):
    return _nmi(weights.argmax(1).tolist(), types, geometric=True)


def nmi_first_type_only(weights, types):
    return _nmi(weights.argmax(1).tolist(), [row[:1] for row in types])


def nmi_ties_to_the_higher_expert(weights, types):
    top = (weights.shape[1] - 1 - weights.flip(1).argmax(1)).tolist()
    return _nmi(top, types)


WRONG = {
    "top_k_routing": [routing_not_renormalised, routing_without_max_shift, routing_in_input_precision],
    "load_balance_loss": [balance_sample_variance, balance_not_squared, balance_counting_queries],
    "top_expert_nmi": [nmi_unweighted_pairs, nmi_geometric_normalisation, nmi_first_type_only,
                       nmi_ties_to_the_higher_expert],
}
"""Per exercise of notebook 03, the wrong answers its checks must reject."""
