"""Training-curve summaries (cirlib.analysis.curves): best and last epoch, loss trend, a fall after the peak."""

from __future__ import annotations

import pytest
import torch

from cirlib.analysis.curves import read_fusion_log, summarise_curve
from cirlib.train.stage2 import FusionTrainConfig, train_fusion
from cirlib.train.triplets import TripletFeatures
from cirlib.util.errors import FileError


def rows(values: list[float], losses: list[float] | None = None) -> list[dict]:
    """A log with one row per value (epochs from 1), with the training loss when given."""
    return [{"epoch": e + 1, "Avg": v, **({"train loss": losses[e]} if losses else {})} for e, v in enumerate(values)]


def test_an_early_peak_with_a_falling_loss_is_overfitting_beyond_the_tolerance_only():
    summary = summarise_curve(rows([40.0, 37.5, 33.5], losses=[6.8, 4.9, 2.9]), "Avg")
    assert (summary.best_epoch, summary.best, summary.last_epoch, summary.last) == (1, 40.0, 3, 33.5)
    assert (summary.first_loss, summary.last_loss, summary.drop) == (6.8, 2.9, 6.5)
    assert summary.loss_falls and summary.falls_after_peak() and summary.overfits()
    assert summary.falls_after_peak(tolerance=6.0) and not summary.overfits(tolerance=6.5)


def test_a_curve_that_ends_at_its_peak_does_not_fall_and_ties_keep_the_first_epoch():
    rising = summarise_curve(rows([30.0, 35.0, 36.0], losses=[5.0, 4.0, 3.0]), "Avg")
    assert (rising.best_epoch, rising.drop, rising.falls_after_peak(), rising.overfits()) == (3, 0.0, False, False)
    tied = summarise_curve(rows([30.0, 36.0, 36.0, 35.0]), "Avg")
    assert (tied.best_epoch, tied.last_epoch, tied.drop) == (2, 4, 1.0)


def test_a_run_without_training_has_no_loss_and_cannot_overfit():
    summary = summarise_curve(rows([32.9]), "Avg")
    assert (summary.first_loss, summary.last_loss, summary.loss_falls, summary.overfits()) == (None, None, False, False)
    rising_loss = summarise_curve(rows([40.0, 30.0], losses=[2.0, 3.0]), "Avg")
    assert rising_loss.falls_after_peak() and not rising_loss.loss_falls and not rising_loss.overfits()


def test_a_missing_metric_or_an_empty_log_is_refused():
    with pytest.raises(ValueError, match="epochs \\[2\\] have no 'Avg'"):
        summarise_curve([{"epoch": 1, "Avg": 1.0}, {"epoch": 2, "R@1": 1.0}], "Avg")
    with pytest.raises(ValueError, match="no epochs"):
        summarise_curve([], "Avg")


def test_a_real_run_is_summarised_with_the_epoch_training_kept_as_best(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = TripletFeatures(torch.randn(40, 16, generator=generator), torch.arange(20), torch.arange(20, 40),
                           torch.randn(20, 1, 16, generator=generator))
    scores = iter([3.0, 5.0, 5.0, 2.0])  # a seeded "validation": peak at epoch 2 (tied at 3), then a fall
    config = FusionTrainConfig(fusion="combiner", fusion_options={"projection_dim": 8, "hidden_dim": 8}, epochs=4,
                               batch_size=10, selection_metric="R@1", device="cpu", out=str(tmp_path / "run"))
    trained = train_fusion(config, data, lambda model: {"R@1": next(scores)}, progress=False, verbose=False)
    log = read_fusion_log(tmp_path / "run")
    summary = summarise_curve(log, "R@1")
    assert (summary.best_epoch, summary.best, summary.last_epoch, summary.last) == (2, 5.0, 4, 2.0)
    assert summary.best_epoch == trained["best"]["epoch"] and summary.last == trained["last"]["R@1"]
    assert (summary.first_loss, summary.last_loss) == (log[0]["train loss"], trained["last"]["train loss"])


def test_a_missing_or_damaged_log_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileError, match=r"log\.json: no training log here\. Fix: train the run first"):
        read_fusion_log(tmp_path)
    (tmp_path / "log.json").write_text('{"config": {}, "log": [{"epoch": 1, ')  # truncated mid-write
    with pytest.raises(FileError, match=r"log\.json: not a fusion training log .*Fix: retrain"):
        read_fusion_log(tmp_path)
    (tmp_path / "log.json").write_text('[{"epoch": 1}]')  # JSON, but not a fusion log
    with pytest.raises(FileError, match="not a fusion training log"):
        read_fusion_log(tmp_path)
