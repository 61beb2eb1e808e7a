"""Learning-rate schedules as pure functions of the step, so a resumed run gets the same rates.

Each schedule is ``(step, total_steps, peak_lr, warmup_steps) -> lr`` with the same linear warmup
(``peak_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps); :data:`LR_SCHEDULES`
names them for configs (``lr_schedule``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int, int, float, int], float]


def _warmup(step: int, peak_lr: float, warmup_steps: int) -> float | None:
    """The warmup rate of ``step``, or None once warmup is over."""
    return peak_lr * (step + 1) / warmup_steps if step < warmup_steps else None


def cosine_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup to ``peak_lr`` over ``warmup_steps``, then cosine decay to zero at ``total_steps``."""
    warm = _warmup(step, peak_lr, warmup_steps)
    if warm is not None:
        return warm
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def constant_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup to ``peak_lr`` over ``warmup_steps``, then ``peak_lr`` to the end (``total_steps`` is unused).

    CLIP4Cir trains its stage 2 (the Combiner) at a constant rate with no warmup (``warmup_steps=0``).
    """
    warm = _warmup(step, peak_lr, warmup_steps)
    return peak_lr if warm is None else warm


LR_SCHEDULES: dict[str, Schedule] = {"cosine": cosine_lr, "constant": constant_lr}
"""The schedules a config's ``lr_schedule`` names."""
