"""The batch-based classification (BBC) loss of CLIP4Cir and CLIP-CD."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_classification_loss(queries: torch.Tensor, targets: torch.Tensor, logit_scale: float = 100.0,
                              first_label: int = 0) -> torch.Tensor:
    """Cross-entropy of each query against every in-batch target, its own being the right class.

    logits[i, j] = logit_scale * cos(query_i, target_j); query i's own target is row
    ``first_label + i`` of ``targets`` (``first_label`` > 0 when ``targets`` were gathered from
    several processes). One direction only (queries -> targets), mean over the queries. Computed in
    float32 whatever the inputs' precision (bf16 logits at scale 100 would round to steps of 0.5).
    """
    logits = logit_scale * F.normalize(queries.float(), dim=-1) @ F.normalize(targets.float(), dim=-1).T
    labels = torch.arange(first_label, first_label + len(queries), device=queries.device)
    return F.cross_entropy(logits, labels)
