"""Stage 1 (cirlib.train.stage1): CLIP4Cir's fine-tuning of both encoders with the sum fusion. The loss falls,
resume repeats an uninterrupted run, the run-folder rules, the fine-tuned checkpoint as an encoder with its own
feature-cache entries and as stage 2's encoder, the comparison table, gradient checkpointing, config errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cirlib.cli import main
from cirlib.encoders import load_encoder
from cirlib.encoders.clip_model import build_clip
from cirlib.encoders.loading import config_encoder
from cirlib.evaluation import evaluate_split
from cirlib.experiments.job_features import val_features
from cirlib.experiments.jobs import load_job_config, run_stage1_job
from cirlib.experiments.stage1_table import comparison_configs, config_paths, stage1_comparison
from cirlib.features import FeatureCache
from cirlib.fusion import sum_fusion
from cirlib.train import stage1
from cirlib.train.checkpoint import read_record
from cirlib.train.stage1 import (
    BEST,
    LAST,
    Stage1Config,
    enable_grad_checkpointing,
    image_triplets,
    sum_fusion_loss,
    train_stage1,
)
from cirlib.util.errors import ConfigError, FileError
from tests.helpers import TINY_CLIP, tiny_model_dir

REPO = Path(__file__).resolve().parents[1]
CIRR_RUN = {"dataset": "cirr", "epochs": 2, "batch_size": 32, "lr": 1e-3, "device": "cpu"}
QUIET = {"progress": False, "verbose": False}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("clip") / "clip")[0]


def stage1_config(root: Path, model: Path, out: Path, **changes) -> Stage1Config:
    """A stage-1 run of the tiny CLIP on the tiny benchmark's synth-cirr (320 training triplets)."""
    return Stage1Config(**{**CIRR_RUN, "data_root": str(root / "synth-cirr"), "model": str(model), "out": str(out),
                           **changes})


@pytest.fixture(scope="module")
def finished(small_benchmark, tiny_clip, tmp_path_factory) -> tuple[Stage1Config, dict]:
    """(config, results) of a finished two-epoch stage-1 job, run in ``<folder>/seed0`` as a seed table runs it."""
    config = stage1_config(small_benchmark[0], tiny_clip, tmp_path_factory.mktemp("stage1") / "seed0")
    return config, run_stage1_job(config, **QUIET)


def train_log(folder: Path) -> list[dict]:
    """log.json's rows without the wall-clock seconds."""
    rows = json.loads((folder / "log.json").read_text())["log"]
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def test_the_loss_falls_on_a_toy_task(small_benchmark, tiny_clip, tmp_path):
    config = stage1_config(small_benchmark[0], tiny_clip, tmp_path / "run")
    result = train_stage1(config, config_encoder(config), image_triplets(config), **QUIET)
    log = train_log(tmp_path / "run")
    assert [row["epoch"] for row in log] == [1, 2] and result["last"]["epoch"] == 2
    assert log[0]["train loss"] > 3.0  # about ln(32) = 3.47 at chance
    assert log[-1]["train loss"] < log[0]["train loss"] - 0.3  # 3.38 -> 2.95


def test_resume_repeats_an_uninterrupted_run_number_for_number(small_benchmark, tiny_clip, tmp_path, monkeypatch):
    def score(encoder):  # a validation that depends on the current weights
        return {"Avg": float(encoder.model.text_projection.detach().sum())}

    def run(out: Path, resume: bool = False) -> None:
        config = stage1_config(small_benchmark[0], tiny_clip, out, batch_size=64)
        train_stage1(config, config_encoder(config), image_triplets(config), score, resume=resume, **QUIET)

    run(tmp_path / "whole")
    reseed = stage1.reseed

    def interrupt(seed: int, epoch: int, rank: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt
        reseed(seed, epoch, rank)

    monkeypatch.setattr(stage1, "reseed", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "parted")
    monkeypatch.undo()
    assert read_record(tmp_path / "parted" / LAST)["epoch"] == 1
    run(tmp_path / "parted", resume=True)
    whole, parted = load_file(tmp_path / "whole" / LAST), load_file(tmp_path / "parted" / LAST)
    assert whole.keys() == parted.keys() and any(key.startswith("optimizer.state.") for key in whole)
    assert all(torch.equal(whole[key], parted[key]) for key in whole)
    assert train_log(tmp_path / "whole") == train_log(tmp_path / "parted")
    assert len(train_log(tmp_path / "whole")) == 2


def test_an_occupied_folder_is_refused_and_a_finished_run_is_reused(finished):
    config, results = finished
    assert results["train triplets"] == 320 and results["last"]["epoch"] == 2
    assert results["best"]["epoch"] in (1, 2) and results["encoder"].startswith(f"{config.model}@")
    with pytest.raises(FileError, match="holds a finished run, epoch 2 of 2.*--resume"):
        run_stage1_job(config, **QUIET)
    stamps = {path.name: path.stat().st_mtime_ns for path in Path(config.out).iterdir()}
    assert run_stage1_job(config, resume=True, **QUIET) == results
    assert {path.name: path.stat().st_mtime_ns for path in Path(config.out).iterdir()} == stamps
    with pytest.raises(FileError, match=r"another config \(lr: 0.001 in the run, 0.0005 now\)"):
        run_stage1_job(dataclasses.replace(config, lr=5e-4), resume=True, **QUIET)


def test_the_best_checkpoint_is_an_encoder_with_its_own_feature_cache_entries(finished, tmp_path):
    config, results = finished
    base = load_encoder(config.model, device="cpu")
    tuned = load_encoder(config.model, pretrained=str(Path(config.out) / BEST), device="cpu")
    assert tuned.identity != base.identity and tuned.feature_key["weights"] != base.feature_key["weights"]
    assert read_record(Path(config.out) / BEST)["base encoder"] == base.identity
    cache, texts = FeatureCache(tmp_path / "cache", progress=False), ["make it red", "add a small blue circle"]
    first = cache.text_features(base, texts, "edits")
    assert not torch.allclose(cache.text_features(tuned, texts, "edits"), first)
    assert len(list((tmp_path / "cache").glob("edits-texts-*.safetensors"))) == 2
    assert torch.equal(cache.text_features(base, texts, "edits"), first)
    # The run validated each epoch's weights in memory; the best checkpoint through the cache gives the same numbers.
    metrics = evaluate_split("cirr", val_features(tuned, cache, config), sum_fusion)
    assert metrics == {name: results["best"][name] for name in metrics}


def test_a_fusion_job_given_the_stage1_checkpoint_trains_on_the_fine_tuned_features(finished, tmp_path):
    config, _ = finished
    best = Path(config.out) / BEST
    (tmp_path / "combiner.yaml").write_text(
        f"kind: fusion\ndataset: cirr\ndata_root: {config.data_root}\nmodel: {config.model}\npretrained: {best}\n"
        f"cache: {tmp_path / 'cache'}\nfusion: combiner\nfusion_options: {{projection_dim: 32, hidden_dim: 32}}\n"
        f"epochs: 1\nbatch_size: 64\ndevice: cpu\nout: {tmp_path / 'combiner'}\n")
    assert main(["train", "--config", str(tmp_path / "combiner.yaml")]) == 0
    tuned = load_encoder(config.model, pretrained=str(best), device="cpu")
    assert json.loads((tmp_path / "combiner" / "results.json").read_text())["encoder"].startswith(tuned.identity)
    _, fusion = load_job_config(tmp_path / "combiner.yaml")
    cached = sorted((tmp_path / "cache").iterdir())
    val_features(tuned, FeatureCache(fusion.cache, progress=False), fusion)  # the job cached these
    assert sorted((tmp_path / "cache").iterdir()) == cached
    val_features(load_encoder(config.model, device="cpu"), FeatureCache(fusion.cache, progress=False), fusion)
    assert len(list((tmp_path / "cache").iterdir())) > len(cached)  # the base encoder's are other entries


def test_the_comparison_table_reuses_finished_runs_and_pairs_each_seed(finished, tmp_path):
    config, results = finished
    combiner = (f"kind: fusion\ndataset: cirr\ndata_root: {config.data_root}\nmodel: {config.model}\n"
                f"cache: {tmp_path / 'cache'}\nfusion: combiner\nfusion_options: {{projection_dim: 32, hidden_dim: 32}}\n"
                "epochs: 1\nbatch_size: 64\ndevice: cpu\n")
    (tmp_path / "synth_combiner_cirr.yaml").write_text(combiner + f"out: {tmp_path / 'frozen'}\n")
    (tmp_path / "synth_stage1_combiner_cirr.yaml").write_text(combiner + f"out: {tmp_path / 'tuned'}\n")
    stage1_fields = {**config.to_json(), "out": str(Path(config.out).parent)}
    (tmp_path / "synth_stage1_cirr.yaml").write_text("".join(f"{key}: {json.dumps(value)}\n"
                                                             for key, value in stage1_fields.items()))
    text = stage1_comparison(config_paths(tmp_path, "cirr"), [0], tmp_path / "results")
    table = json.loads((tmp_path / "results" / "stage1_synth-cirr.json").read_text())
    assert list(table["rows"]) == ["frozen + Combiner", "stage-1 sum", "stage-1 + Combiner"]
    assert table["rows"]["stage-1 sum"]["runs"][0] == {**results["best"], "train s": results["last"]["seconds"]}
    paired = json.loads((tmp_path / "tuned" / "seed0" / "results.json").read_text())
    assert paired["config"]["pretrained"] == str(Path(config.out) / BEST)
    assert table["rows"]["stage-1 + Combiner"]["runs"][0]["train s"] == pytest.approx(
        results["last"]["seconds"] + paired["last"]["seconds"])
    assert "| stage-1 + Combiner |" in text and "Rsubset@1" in text
    # A stage-2 run names its weights by path: one trained on weights the file no longer holds is refused, not reused.
    paired["encoder"] = "an earlier stage 1@0123456789abcdef  " + paired["encoder"].split("  ", 1)[1]
    (tmp_path / "tuned" / "seed0" / "results.json").write_text(json.dumps(paired))
    with pytest.raises(FileError, match="holds a Combiner trained on other weights than .*best.safetensors holds now"):
        stage1_comparison(config_paths(tmp_path, "cirr"), [0], tmp_path / "results")
    (tmp_path / "synth_stage1_combiner_cirr.yaml").write_text(combiner.replace("epochs: 1", "epochs: 2")
                                                               + f"out: {tmp_path / 'tuned'}\n")
    with pytest.raises(ConfigError, match="field 'epochs' is 2; expected 1 as in .*differ only in pretrained"):
        comparison_configs(config_paths(tmp_path, "cirr"))


@pytest.mark.parametrize("dataset", ["fashioniq", "cirr"])
def test_the_shipped_stage1_configs_load_and_their_combiners_differ_only_in_the_weights(dataset):
    frozen, tuning, finetuned = comparison_configs(config_paths(REPO / "configs", dataset))
    assert tuning.kind == "stage1" and tuning.dataset == dataset == finetuned.dataset
    assert finetuned.pretrained.endswith(f"{Path(tuning.out).name}/seed0/best.safetensors")
    assert frozen.pretrained is None


@pytest.mark.parametrize("vision", [TINY_CLIP["vision_cfg"], {"image_size": 64, "layers": [1, 2, 1, 1], "width": 8}],
                         ids=["vit", "resnet"])
def test_gradient_checkpointing_recomputes_every_block_and_changes_no_number(vision):
    torch.manual_seed(0)
    model = build_clip({**TINY_CLIP, "vision_cfg": vision}).eval()
    pixels, tokens = torch.randn(8, 3, vision["image_size"], vision["image_size"]), torch.randint(1, 400, (4, 16))
    blocks = [model.visual.layer2[0] if "layer2" in dict(model.visual.named_children()) else
              model.visual.transformer.resblocks[0], model.transformer.resblocks[0]]
    calls = [0, 0]
    for index, block in enumerate(blocks):
        block.register_forward_pre_hook(lambda *_, index=index: calls.__setitem__(index, calls[index] + 1))

    def loss_and_grads() -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        loss = sum_fusion_loss(model, pixels, tokens, 100.0)
        loss.backward()
        return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads()
    assert calls == [1, 1]
    names = list(model.state_dict())
    enable_grad_checkpointing(model)
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    assert calls == [3, 3]  # forward, then again in the backward pass
    assert list(model.state_dict()) == names and checkpointed_loss == plain_loss
    assert plain_grads.keys() == checkpointed_grads.keys()
    assert all(torch.allclose(plain_grads[name], checkpointed_grads[name], atol=1e-6) for name in plain_grads)


def test_config_errors_are_one_line_naming_the_field(small_benchmark, tiny_clip, tmp_path, capsys):
    for field, value, expected in [("batch_size", 1, "an integer >= 2"), ("grad_checkpointing", "yes", "true or false"),
                                   ("lr", 0, "a number > 0"), ("lr_schedule", "linear", "one of cosine, constant"),
                                   ("dataset", "circo", "one of fashioniq, cirr")]:
        with pytest.raises(ConfigError, match=f"Stage1Config: field '{field}' is .*; expected {expected}"):
            Stage1Config(**{field: value})
    with pytest.raises(ConfigError, match="field 'categories' is \\[\\]; expected at least one of dress"):
        Stage1Config(dataset="fashioniq", categories=[])
    (tmp_path / "bad.yaml").write_text("kind: stage1\ndataset: cirr\nselection_metric: R@7\n")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'bad.yaml'}: field 'selection_metric' is 'R@7'; expected one "
                                          "of cirr's validation metrics"):
        load_job_config(tmp_path / "bad.yaml")
    too_big = stage1_config(small_benchmark[0], tiny_clip, tmp_path / "big", batch_size=400)
    with pytest.raises(ConfigError, match="field 'batch_size' is 400; expected at most the 320 training triplets"):
        run_stage1_job(too_big, **QUIET)
    (tmp_path / "zero.yaml").write_text("kind: stage1\nepochs: 0\n")
    assert main(["train", "--config", str(tmp_path / "zero.yaml")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "field 'epochs' is 0; expected an integer >= 1" in error
