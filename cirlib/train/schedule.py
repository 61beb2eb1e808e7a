"""Learning-rate schedule as a pure function of the step, so a resumed run gets the same rates."""

from __future__ import annotations

import math


def cosine_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup to ``peak_lr`` over ``warmup_steps``, then cosine decay to zero at ``total_steps``."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1 + math.cos(math.pi * min(1.0, progress)))
