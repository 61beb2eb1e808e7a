"""The papers' training and selection protocols (issue 15, items 6-8): CLIP4Cir's constant learning rate, its CIRR
model selection by the arithmetic, harmonic and geometric mean of the seven recalls, one-line errors for test
splits, `cirlib train` overrides checked like the YAML, and runs whose saved paths work from any directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cirlib.cli import main
from cirlib.encoders import load_encoder
from cirlib.evaluation.evaluate import evaluate_circo, evaluate_cirr
from cirlib.experiments.jobs import load_job_config
from cirlib.features import FeatureCache, circo_features, cirr_features
from cirlib.features.splits import SplitFeatures
from cirlib.fusion import text_only
from cirlib.metrics import protocol
from cirlib.metrics.recall import cirr_means
from cirlib.train.checkpoint import read_record
from cirlib.train.schedule import constant_lr
from cirlib.train.stage2 import train_fusion
from cirlib.util.errors import CirlibError
from tests.helpers import tiny_model_dir
from tests.test_metrics import CIRR_GALLERY, CIRR_MEMBERS, CIRR_REFERENCES, CIRR_SIMILARITY, CIRR_TARGETS
from tests.test_readers import circo_root, cirr_root  # noqa: F401  (fixtures: tiny official layouts)
from tests.test_train import config as toy_config
from tests.test_train import toy_task

SEVEN = ("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("clip"))[0]


# ---- the constant learning rate -------------------------------------------------------------------

def test_constant_schedule_warms_up_linearly_then_holds_the_rate_at_every_step(tmp_path, monkeypatch):
    warming = [constant_lr(step, 10, 1.0, warmup_steps=3) for step in range(6)]
    assert warming == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1])
    assert {constant_lr(step, 10, 2e-5) for step in range(10)} == {2e-5}  # CLIP4Cir's stage 2: no warmup
    rates, step = [], torch.optim.AdamW.step

    def spy(optimizer, *args, **kwargs):
        rates.append(optimizer.param_groups[0]["lr"])
        return step(optimizer, *args, **kwargs)
    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train, _ = toy_task()
    result = train_fusion(toy_config(tmp_path, lr_schedule="constant", warmup_steps=3, epochs=2, lr=3e-3), train,
                          None, progress=False)
    assert len(rates) == 2 * (len(train) // 50) == 24  # 600 triplets, batch 50, 2 epochs
    assert rates == pytest.approx([1e-3, 2e-3] + [3e-3] * 22, rel=1e-12)
    assert result["last"]["lr"] == pytest.approx(3e-3)


# ---- CLIP4Cir's CIRR selection: three means of the seven recalls --------------------------------

def hand_split() -> SplitFeatures:
    """tests/test_metrics.py's CIRR toy as features: the gallery is the identity, so query i's scores are its text
    row (text_only normalises it), and the recalls are the hand-computed ones there."""
    return SplitFeatures(gallery_names=CIRR_GALLERY, gallery=torch.eye(8), reference=torch.zeros(3, 8),
                         text=torch.tensor(CIRR_SIMILARITY, dtype=torch.float32), reference_names=CIRR_REFERENCES,
                         target_names=CIRR_TARGETS, query_texts=["q0", "q1", "q2"],
                         extra={"img_set_members": CIRR_MEMBERS})


def test_evaluate_cirr_returns_the_three_means_of_the_seven_recalls_computed_by_hand():
    found = evaluate_cirr(hand_split(), text_only)
    # target ranks 5, 2, 1 in the gallery and 3, 2, 1 in the subsets (tests/test_metrics.py)
    assert [found[name] for name in SEVEN] == pytest.approx([100 / 3, 100, 100, 100, 100 / 3, 200 / 3, 100])
    assert found["arithmetic mean"] == pytest.approx((100 / 3 + 300 + 100 / 3 + 200 / 3 + 100) / 7)  # 1600/21
    assert found["harmonic mean"] == pytest.approx(7 / (3 / 100 + 3 / 100 + 3 / 100 + 3 / 200 + 1 / 100))  # 1400/23
    assert found["geometric mean"] == pytest.approx(100 * (1 / 3 * 1 / 3 * 2 / 3) ** (1 / 7))
    assert found["Avg"] == pytest.approx((100 + 100 / 3) / 2)
    assert {"arithmetic mean", "harmonic mean", "geometric mean"} <= set(protocol("cirr").metric_names())
    zero = cirr_means(dict.fromkeys(SEVEN, 50.0) | {"R@1": 0.0})  # Python's geometric_mean would raise here
    assert zero == {"arithmetic mean": pytest.approx(300 / 7), "harmonic mean": 0.0, "geometric mean": 0.0}


SHARP = dict(zip(SEVEN, (1.0, 90.0, 95.0, 99.0, 90.0, 95.0, 99.0))) | {"Avg": 90.0}  # high arithmetic and Avg
EVEN = dict.fromkeys(SEVEN, 50.0) | {"Avg": 50.0}                                      # higher harmonic, geometric


@pytest.mark.parametrize(("selection", "best_epoch"), [("arithmetic mean", 1), ("harmonic mean", 2),
                                                       ("geometric mean", 2), ("Avg", 1)])
def test_the_means_select_the_best_epoch(tmp_path, selection, best_epoch):
    path = tmp_path / "cirr.yaml"
    path.write_text(f"dataset: cirr\nselection_metric: {selection}\n")
    assert load_job_config(path)[1].selection_metric == selection  # a valid selection_metric for CIRR
    epochs = iter([SHARP, EVEN])
    train, _ = toy_task()
    result = train_fusion(toy_config(tmp_path, epochs=2, selection_metric=selection), train,
                          lambda model: (recalls := next(epochs)) | cirr_means(recalls), progress=False)
    assert result["best"]["epoch"] == best_epoch
    assert read_record(tmp_path / "run" / "best.safetensors")["epoch"] == best_epoch


# ---- test splits ---------------------------------------------------------------------------------

def test_evaluating_a_test_split_says_in_one_line_to_write_a_submission(cirr_root, circo_root, model, tmp_path):
    encoder, cache = load_encoder(str(model), device="cpu"), FeatureCache(tmp_path / "cache")
    cases = [(evaluate_cirr, cirr_features(encoder, cache, cirr_root, "test1"), "CIRR split (test1)",
              "write_cirr_submission"),
             (evaluate_circo, circo_features(encoder, cache, circo_root, "test"), "CIRCO split (test)",
              "write_circo_submission")]
    for evaluate, features, split, writer in cases:
        with pytest.raises(CirlibError) as caught:
            evaluate(features, text_only)
        message = str(caught.value)
        assert "\n" not in message and f"{split} has no targets (a test split): write a submission" in message
        assert writer in message and "not in the gallery" not in message


# ---- `cirlib train` overrides, and runs that work from any directory --------------------------------

def write_config(folder: Path, root: str, model: str, **fields) -> Path:
    """A CLIP4Cir-like CIRR config (batch 4096, as the real one) with the paths spelled as given."""
    path = folder / "clip4cir_cirr.yaml"
    lines = {"kind": "fusion", "dataset": "cirr", "data_root": root, "model": model, "fusion": "combiner",
             "fusion_options": "{projection_dim: 16, hidden_dim: 16}", "epochs": 1, "batch_size": 4096,
             "device": "cpu", **fields}
    path.write_text("".join(f"{key}: {value}\n" for key, value in lines.items()))
    return path


OVERRIDES = ["--batch-size", "1", "--lr", "1e-3", "--warmup-steps", "0", "--lr-schedule", "constant",
             "--selection-metric", "geometric mean"]


def test_train_overrides_then_eval_from_another_directory_and_resume_with_other_spellings(
        cirr_root, model, tmp_path, monkeypatch, capsys):
    (tmp_path / "clip").symlink_to(model, target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # every path of the run relative to here
    here = Path.cwd()  # tmp_path as the working directory spells it
    path = write_config(tmp_path, "CIRR", "clip", cache="cache", out="runs/c")
    assert main(["train", "--config", str(path), *OVERRIDES]) == 0
    results = json.loads((tmp_path / "runs" / "c" / "results.json").read_text())
    saved = results["config"]
    assert {k: saved[k] for k in ("batch_size", "lr", "warmup_steps", "lr_schedule", "selection_metric")} == {
        "batch_size": 1, "lr": 1e-3, "warmup_steps": 0, "lr_schedule": "constant", "selection_metric": "geometric mean"}
    assert (saved["data_root"], saved["model"]) == (str(here / "CIRR"), str(here / "clip"))  # the link kept
    assert results["best"]["lr"] == 1e-3 and math.isfinite(results["best"]["geometric mean"])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "runs" / "c"), "--cache", "cache", "--results", "results"]) == 0
    evaluated = json.loads((elsewhere / "results" / "eval_c_best.json").read_text())
    assert evaluated["metrics"] == pytest.approx({k: results["best"][k] for k in evaluated["metrics"]})
    assert set(SEVEN) | {"harmonic mean"} <= set(evaluated["metrics"])

    other = write_config(elsewhere, "../CIRR/.", str(here / "clip"), cache="../cache", out="../runs/c")
    assert main(["train", "--config", str(other), *OVERRIDES, "--resume"]) == 0
    assert "already complete and is reused as is" in capsys.readouterr().out


@pytest.mark.parametrize(("options", "field"), [
    (["--batch-size", "0"], "batch_size"), (["--batch-size", "many"], "batch_size"), (["--lr", "-1"], "lr"),
    (["--warmup-steps", "-2"], "warmup_steps"), (["--lr-schedule", "linear"], "lr_schedule"),
    (["--selection-metric", "avg"], "selection_metric")])
def test_a_bad_override_is_a_one_line_error_naming_the_command_line(tmp_path, capsys, options, field):
    path = write_config(tmp_path, str(tmp_path / "nowhere"), "synthclip", out=str(tmp_path / "run"),
                        cache=str(tmp_path / "cache"))
    assert main(["train", "--config", str(path), *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: command line: field {field!r} is ") and error.count("\n") == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_an_override_the_job_has_no_field_for_names_the_command_line(tmp_path, capsys):
    path = tmp_path / "pic2word.yaml"
    path.write_text(f"kind: pic2word\nout: {tmp_path / 'run'}\n")
    assert main(["train", "--config", str(path), "--warmup-steps", "5"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: command line: field 'warmup_steps' is '5'; expected nothing: a pic2word job")
    assert main(["train", "--config", str(path), "--seeds", "0", "1", "--lr", "1e-3"]) == 2
    assert "--seeds trains each config as its file says, so --lr would be ignored" in capsys.readouterr().err
