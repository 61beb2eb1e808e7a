"""Stage-2 training: the BBC loss, the schedule, learning a toy task, checkpoints, exact resume, logs."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from cirlib.fusion import MoECombiner, sum_fusion
from cirlib.train.checkpoint import read_record
from cirlib.train.loss import batch_classification_loss
from cirlib.train.pretrain import parameter_groups
from cirlib.train.schedule import cosine_lr
from cirlib.train.stage2 import FusionTrainConfig, epoch_plan, load_trained_fusion, train_fusion
from cirlib.train.triplets import TripletFeatures, fashioniq_training_texts
from cirlib.util.errors import FileError

D, IMAGES, EDITS = 16, 120, 6


def toy_task(seed: int = 0):
    """target = image + offset of the edit; the text feature is the offset seen through a fixed rotation,
    so adding raw text to the image (the sum baseline) misses and a trained fusion can learn it."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(IMAGES, D, generator=generator)
    offsets = torch.randn(EDITS, D, generator=generator) * 1.5
    rotation = torch.linalg.qr(torch.randn(D, D, generator=generator))[0]

    def triplets(n: int, stream: int):
        g = torch.Generator().manual_seed(100 + stream)
        reference, edit = torch.randint(IMAGES, (n,), generator=g), torch.randint(EDITS, (n,), generator=g)
        return images[reference], offsets[edit] @ rotation.T, images[reference] + offsets[edit]

    v, t, target = triplets(600, 0)
    train = TripletFeatures(torch.cat([v, target]), torch.arange(600), torch.arange(600, 1200),
                            torch.stack([t, 0.9 * t], dim=1))  # two text forms per triplet
    return train, triplets(200, 1)


def recall_at_1(queries: torch.Tensor, targets: torch.Tensor) -> float:
    scores = queries @ F.normalize(targets, dim=-1).T
    return float((scores.argmax(1) == torch.arange(len(targets))).float().mean() * 100)


def validation(held_out):
    v, t, target = held_out

    def validate(model):
        model.eval()
        with torch.no_grad():
            return {"R@1": recall_at_1(model(v, t), target)}
    return validate


def config(tmp_path, **changes) -> FusionTrainConfig:
    settings = dict(fusion="combiner", fusion_options={"projection_dim": 32, "hidden_dim": 32, "dropout": 0.1},
                    epochs=4, batch_size=50, lr=3e-3, selection_metric="R@1", device="cpu", out=str(tmp_path / "run"))
    return FusionTrainConfig(**(settings | changes))


def test_bbc_loss_equals_a_hand_computation():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0]])      # normalised: (1, 0), (0, 1)
    targets = torch.tensor([[3.0, 0.0], [1.0, 1.0]])      # normalised: (1, 0), (s, s) with s = 1/sqrt 2
    s = 1 / math.sqrt(2)
    # query 0: logits (100, 100 s), its class 0; query 1: logits (0, 100 s), its class 1
    expected = (-math.log(math.exp(100) / (math.exp(100) + math.exp(100 * s)))
                - math.log(math.exp(100 * s) / (1 + math.exp(100 * s)))) / 2
    assert batch_classification_loss(queries, targets).item() == pytest.approx(expected, rel=1e-5)
    assert batch_classification_loss(queries, targets, logit_scale=1.0).item() == pytest.approx(
        (-math.log(math.e / (math.e + math.exp(s))) - math.log(math.exp(s) / (1 + math.exp(s)))) / 2, rel=1e-6)
    # a process holding queries 2..3 of a gathered batch of 4 targets labels them 2 and 3
    four = torch.randn(4, 2)
    both = batch_classification_loss(four[2:], four, first_label=2)
    logits = 100 * F.normalize(four[2:], dim=-1) @ F.normalize(four, dim=-1).T
    assert both.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([2, 3])).item(), rel=1e-6)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    assert cosine_lr(0, 100, 1.0, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 1.0, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 1.0, warmup_steps=10) == pytest.approx(0.0)


def test_one_cosine_decay_spans_every_epoch_of_a_run(tmp_path):
    """600 triplets in batches of 50: 12 steps per epoch, 36 in all; each epoch logs its last step's rate."""
    train, held_out = toy_task()
    result = train_fusion(config(tmp_path, epochs=3, warmup_steps=2), train, validation(held_out), progress=False,
                          verbose=False)
    log = json.loads((tmp_path / "run" / "log.json").read_text())["log"]
    assert [row["lr"] for row in log] == pytest.approx([cosine_lr(12 * e - 1, 36, 3e-3, 2) for e in (1, 2, 3)])
    assert result["last"]["lr"] == pytest.approx(cosine_lr(35, 36, 3e-3, 2)) and log[0]["lr"] > log[1]["lr"] > 0


def test_each_epoch_draws_every_text_form_in_its_own_order():
    order, forms = epoch_plan(4000, seed=0, epoch=0, forms=4)
    assert sorted(order.tolist()) == list(range(4000))
    assert set(forms.tolist()) == {0, 1, 2, 3} and all(900 < (forms == f).sum() < 1100 for f in range(4))
    again, other = epoch_plan(4000, seed=0, epoch=0, forms=4), epoch_plan(4000, seed=0, epoch=1, forms=4)
    assert torch.equal(again[1], forms) and not torch.equal(other[1], forms) and not torch.equal(other[0], order)


def test_weight_decay_reaches_matrices_only():
    model = MoECombiner(D, projection_dim=8, hidden_dim=12)
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): name for name, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"attention_norm.weight", "attention_norm.bias",
                                                         "text_projection.1.weight", "router.bias"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_fashioniq_training_texts_are_clip4cirs_four_forms():
    assert fashioniq_training_texts(["is red.", " has stripes?"]) == (
        "Is red and has stripes", "Has stripes and is red", "Is red", "Has stripes")


@pytest.mark.parametrize("fusion", ["combiner", "moe"])
def test_training_learns_a_toy_edit_that_the_sum_baseline_cannot_follow(tmp_path, fusion):
    train, held_out = toy_task()
    validate = validation(held_out)
    baseline = recall_at_1(sum_fusion(held_out[0], held_out[1]), held_out[2])
    result = train_fusion(config(tmp_path, fusion=fusion), train, validate, progress=False)
    assert baseline < 30 and result["best"]["R@1"] > baseline + 40
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log["config"]["fusion"] == fusion and len(log["log"]) == 4
    assert log["log"][-1]["train loss"] < log["log"][0]["train loss"]
    assert (tmp_path / "run" / "log.csv").read_text().startswith("# config: {")


def test_best_checkpoint_round_trip_restores_the_best_epoch(tmp_path):
    train, held_out = toy_task()
    snapshots, v, t = [], held_out[0], held_out[1]

    def validate(model):  # the metric prefers epoch 2, which epoch 3 only ties; keep every epoch's queries
        model.eval()
        with torch.no_grad():
            snapshots.append(model(v, t))
        return {"R@1": [1.0, 5.0, 5.0, 3.0][len(snapshots) - 1]}
    train_fusion(config(tmp_path), train, validate, progress=False)
    model, record = load_trained_fusion(tmp_path / "run" / "best.safetensors")
    assert record["epoch"] == 2 and record["metrics"]["R@1"] == 5.0
    with torch.no_grad():
        assert torch.equal(model(v, t), snapshots[1])
    assert read_record(tmp_path / "run" / "last.safetensors")["epoch"] == 4


def test_resume_continues_the_same_trajectory_number_for_number(tmp_path):
    """Router noise and dropout draw random numbers: a resumed run must still repeat the uninterrupted one."""
    train, held_out = toy_task()
    moe = {"fusion": "moe", "fusion_options": {"projection_dim": 16, "hidden_dim": 24, "router_noise": 0.5}}
    whole = train_fusion(config(tmp_path / "a", **moe), train, validation(held_out), progress=False)
    calls = []

    def dies_in_epoch_3(model):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return validation(held_out)(model)
    interrupted = config(tmp_path / "b", **moe)
    with pytest.raises(KeyboardInterrupt):
        train_fusion(interrupted, train, dies_in_epoch_3, progress=False)
    assert read_record(tmp_path / "b" / "run" / "last.safetensors")["epoch"] == 2
    resumed = train_fusion(interrupted, train, validation(held_out), resume=True, progress=False)
    strip = lambda log: [{k: v for k, v in row.items() if k != "seconds"} for row in log]  # noqa: E731
    first = json.loads((tmp_path / "a" / "run" / "log.json").read_text())["log"]
    second = json.loads((tmp_path / "b" / "run" / "log.json").read_text())["log"]
    assert strip(first) == strip(second)
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileError, match=r"another config \(lr: 0.003 in the run, 1.0 now\)"):
        train_fusion(config(tmp_path / "b", lr=1.0, **moe), train, validation(held_out), resume=True, progress=False)


def test_a_fusion_without_parameters_is_validated_once_and_bad_settings_are_named(tmp_path):
    train, held_out = toy_task()
    result = train_fusion(config(tmp_path, fusion="sum", fusion_options={}), train, validation(held_out),
                          progress=False)
    assert result["best"]["epoch"] == 1 and "train loss" not in result["best"]
    assert result["best"]["R@1"] == recall_at_1(sum_fusion(held_out[0], held_out[1]), held_out[2])
    with pytest.raises(ValueError, match="field 'selection_metric' is 'avg'; expected one of the validation metrics"):
        train_fusion(config(tmp_path / "avg", selection_metric=None, epochs=1), train, validation(held_out),
                     progress=False)
    with pytest.raises(ValueError, match="exceeds the 600 triplets"):
        train_fusion(config(tmp_path / "big", batch_size=1000), train, None, progress=False)


def test_cli_trains_evaluates_and_tabulates_seeds_on_the_small_benchmark(small_benchmark, tmp_path, capsys):
    from cirlib.cli import main
    from tests.helpers import tiny_model_dir

    root, _ = small_benchmark
    model = tiny_model_dir(tmp_path / "clip")[0]
    common = (f"kind: fusion\ndataset: cirr\ndata_root: {root / 'synth-cirr'}\nmodel: {model}\n"
              f"cache: {tmp_path / 'cache'}\nepochs: 2\nbatch_size: 64\nlr: 0.001\ndevice: cpu\n")
    (tmp_path / "combiner.yaml").write_text(common + "fusion: combiner\nfusion_options: {projection_dim: 32, "
                                            f"hidden_dim: 32}}\nout: {tmp_path / 'combiner'}\n")
    (tmp_path / "sum.yaml").write_text(common + f"fusion: sum\nout: {tmp_path / 'sum'}\n")
    assert main(["train", "--config", str(tmp_path / "combiner.yaml")]) == 0
    results = json.loads((tmp_path / "combiner" / "results.json").read_text())
    assert results["config"]["fusion"] == "combiner" and results["best"]["epoch"] in (1, 2)
    assert main(["eval", "--run", str(tmp_path / "combiner"), "--results", str(tmp_path / "results")]) == 0
    evaluated = json.loads((tmp_path / "results" / "eval_combiner_best.json").read_text())
    assert evaluated["metrics"] == pytest.approx({k: results["best"][k] for k in evaluated["metrics"]})
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "sum.yaml"), str(tmp_path / "combiner.yaml"),
                 "--seeds", "0", "1", "--results", str(tmp_path / "results")]) == 0
    table = json.loads((tmp_path / "results" / "fusion_synth-cirr.json").read_text())
    assert list(table["rows"]) == ["image only", "text only", "sum", "combiner"]
    assert len(table["rows"]["combiner"]["runs"]) == 2 and table["rows"]["sum"]["mean_std"]["R@10"][1] == 0.0
    assert "| combiner |" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("kind: nonsense\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "field 'kind' is 'nonsense'; expected one of fusion" in capsys.readouterr().err


def test_config_variants_get_their_own_run_folder(tmp_path):
    from cirlib.experiments.jobs import config_variant

    (tmp_path / "a.yaml").write_text("kind: fusion\nfusion: combiner\nepochs: 3\n")
    first = config_variant(tmp_path / "a.yaml", tmp_path / "runs", epochs=5)
    assert first.epochs == 5 and first.fusion == "combiner" and first.out.startswith(str(tmp_path / "runs" / "a-"))
    assert config_variant(tmp_path / "a.yaml", tmp_path / "runs", epochs=5).out == first.out
    assert config_variant(tmp_path / "a.yaml", tmp_path / "runs", epochs=6).out != first.out


def test_seed_table_rows_are_mean_and_std_per_column_with_parameter_counts():
    from cirlib.experiments.seeds import format_seed_table

    rows = {"image only": {"parameters": 0, "mean_std": {"R@1": [1.234, 0.0], "Avg": [50.04, 0.0]}},
            "combiner": {"parameters": 1234567, "mean_std": {"R@1": [12.25, 1.04], "Avg": [33.3, 0.56]}}}
    assert format_seed_table({"label": "synth-cirr", "rows": rows}, ["R@1", "Avg"], [0, 1, 2]) == (
        "synth-cirr (val, best epoch; mean ± std over seeds 0, 1, 2)\n\n"
        "| method | params | R@1 | Avg |\n|---|---|---|---|\n"
        "| image only | 0 | 1.2 ± 0.0 | 50.0 ± 0.0 |\n| combiner | 1,234,567 | 12.2 ± 1.0 | 33.3 ± 0.6 |")
