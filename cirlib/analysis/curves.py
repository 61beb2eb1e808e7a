"""Training-curve summaries: where validation peaked, where it ended, and whether it fell after its peak.

A fusion run logs one row per epoch (``log.json``: the training loss and the validation metrics). On a
small training set the loss keeps falling while validation recall peaks early and then falls: the model
overfits. The notebooks state that from these summaries, so their sentences follow the numbers of the
run they show, on the small benchmark or the medium one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cirlib.util.errors import FileError

LOSS = "train loss"


@dataclass(frozen=True)
class CurveSummary:
    """One run's validation curve of ``metric`` and its training loss, in a few numbers."""

    metric: str
    best_epoch: int               # the first epoch with the highest value (the checkpoint training keeps)
    best: float
    last_epoch: int
    last: float
    first_loss: float | None      # None for a run without training (the sum baseline)
    last_loss: float | None

    @property
    def drop(self) -> float:
        """How far validation ended below its peak (0 when the last epoch is the best)."""
        return self.best - self.last

    def falls_after_peak(self, tolerance: float = 0.0) -> bool:
        """Whether validation ended more than ``tolerance`` below its peak (e.g. one query's worth of points)."""
        return self.drop > tolerance

    @property
    def loss_falls(self) -> bool:
        """Whether the training loss ended below where it started."""
        return self.first_loss is not None and self.last_loss is not None and self.last_loss < self.first_loss

    def overfits(self, tolerance: float = 0.0) -> bool:
        """Validation fell after its peak while the training loss kept falling."""
        return self.falls_after_peak(tolerance) and self.loss_falls


def summarise_curve(log: Sequence[Mapping[str, float]], metric: str) -> CurveSummary:
    """The summary of ``log`` (rows with "epoch", ``metric`` and, when trained, "train loss"), in epoch order."""
    if not log:
        raise ValueError("the log has no epochs")
    missing = [row.get("epoch", index) for index, row in enumerate(log) if metric not in row]
    if missing:
        raise ValueError(f"epochs {missing} have no {metric!r}; the log's metrics are {sorted(log[0])}")
    best = max(log, key=lambda row: row[metric])  # max keeps the first of equal values, as training does
    losses = [row[LOSS] for row in log if LOSS in row]
    return CurveSummary(metric=metric, best_epoch=int(best["epoch"]), best=float(best[metric]),
                        last_epoch=int(log[-1]["epoch"]), last=float(log[-1][metric]),
                        first_loss=float(losses[0]) if losses else None,
                        last_loss=float(losses[-1]) if losses else None)


def read_fusion_log(run: Path | str) -> list[dict]:
    """The per-epoch rows of a fusion run folder's ``log.json`` (written by ``cirlib.train.stage2``)."""
    path = Path(run) / "log.json"
    try:
        log = json.loads(path.read_text(encoding="utf-8"))["log"]
    except FileNotFoundError:
        raise FileError(path, "no training log here", "train the run first (cirlib train --config ...)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FileError(path, f"not a fusion training log ({error})",
                        "retrain the run with --overwrite") from None
    return log
