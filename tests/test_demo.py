"""The main job on the small benchmark with a tiny CLIP: every stage, its numbers, its files, its reuse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from cirlib.apps.demo import DemoConfig, _train, expected_time, run_demo
from cirlib.apps.failure_report import demo_outcomes
from cirlib.cli import main
from cirlib.experiments.jobs import evaluate_checkpoint
from cirlib.metrics import protocol
from cirlib.weimocir.select import split_metrics
from cirlib.weimocir.sweeps import best_cell
from tests.helpers import tiny_model_dir
from tests.precision import cuda_float32_policy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def demo_run(small_benchmark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    model, _ = tiny_model_dir(folder / "tiny")
    config = DemoConfig(benchmark=str(small_benchmark[0]), size="tiny", model=str(model), device="cpu",
                        cache=str(folder / "cache"), configs=str(CONFIGS), runs=str(folder / "runs"),
                        results=str(folder / "results"), epochs=1)
    return config, run_demo(config)


def test_tables_hold_every_method_with_its_own_numbers(demo_run):
    config, result = demo_run
    for dataset in ("fashioniq", "cirr"):
        rows = result.tables[dataset]
        assert list(rows) == ["image only", "text only", "sum", "sum (normalised inputs)",
                              result.weimocir_label(dataset), result.upper_bound_label(dataset), "Combiner", "MoE"]
        sweep, choice = result.sweeps[dataset], result.held_out[dataset]
        assert best_cell(sweep, protocol(dataset).select_by)[:2] == result.best_cells[dataset] == choice.upper_cell
        assert rows[result.upper_bound_label(dataset)] == sweep.at(*result.best_cells[dataset])
        # the default WeiMoCIR row: each half of val at the other half's best cell, scored on the whole split
        assert choice.cells_text() in result.weimocir_label(dataset) and choice.metric == protocol(dataset).select_by
        assert rows[result.weimocir_label(dataset)] == pytest.approx(
            split_metrics(result.splits[dataset], result.weimocir_scores(dataset)), abs=1e-9)
        # the trained rows are the last epoch's checkpoint, evaluated again from the file
        for label in ("Combiner", "MoE"):
            again = evaluate_checkpoint(result.runs[dataset][label] / "last.safetensors", device="cpu")
            assert again["epoch"] == config.epochs
            shown = {k: v for k, v in again["metrics"].items() if k in rows[label]}  # the table's columns
            assert shown == pytest.approx({k: rows[label][k] for k in again["metrics"] if k in rows[label]})


def test_results_files_record_the_config_and_the_tables(demo_run):
    config, result = demo_run
    out = Path(config.results)
    saved = json.loads((out / "demo.json").read_text())
    assert saved["config"] == json.loads(json.dumps(dataclasses.asdict(config)))
    assert saved["tables"]["cirr"]["MoE"] == pytest.approx(result.tables["cirr"]["MoE"])
    held = saved["held_out"]["fashioniq"]
    assert held["cells"] == [list(cell) for cell in result.held_out["fashioniq"].cells] and "2-fold" in held["protocol"]
    assert set(saved["seconds"]) == {"benchmark", "features and zero-shot baselines", "WeiMoCIR α/β sweep",
                                     "training Combiner and MoE", "tables and figures"}
    table = (out / "demo_cirr.md").read_text()
    assert f"| MoE | {result.tables['cirr']['MoE']['R@1']:.1f} |" in table
    held_out, upper = result.weimocir_label("cirr"), result.upper_bound_label("cirr")
    assert f"| {held_out} | {result.tables['cirr'][held_out]['R@1']:.1f} |" in table and "held-out" in held_out
    assert f"| {upper} | " in table and "chosen on the reported split" in upper
    for name in ("demo_fashioniq.md", "demo_recall.png", "demo_sweep.png"):
        assert (out / name).stat().st_size > 0


def test_a_rerun_reuses_the_finished_runs_through_the_cli(demo_run, capsys):
    config, result = demo_run
    args = ["demo", "--out", config.benchmark, "--size", "tiny", "--model", config.model, "--device", "cpu",
            "--cache", config.cache, "--configs", config.configs, "--runs", config.runs, "--results", config.results,
            "--epochs", "1"]
    assert main(args) == 0
    output = capsys.readouterr().out
    assert "Expected time on 2 CPU cores" in output and "[5/5] tables and figures" in output
    assert output.count("resumed after epoch 1") == 4  # four finished runs, none trained again
    saved = json.loads((Path(config.results) / "demo.json").read_text())
    assert saved["tables"]["fashioniq"]["Combiner"] == pytest.approx(result.tables["fashioniq"]["Combiner"])


def test_a_missing_configs_folder_is_named(demo_run, tmp_path):
    config, _ = demo_run
    broken = dataclasses.replace(config, configs=str(tmp_path / "nowhere"), results=str(tmp_path / "results"))
    with pytest.raises(FileNotFoundError, match="nowhere/synth_combiner_fashioniq.yaml is missing"):
        run_demo(broken)


@pytest.mark.parametrize("dataset", ["fashioniq", "cirr"])
def test_failure_outcomes_reproduce_the_table_rows_of_both_best_methods(demo_run, dataset):
    _, result = demo_run
    frame, (trained, free) = demo_outcomes(result, dataset)
    rows = result.tables[dataset]
    assert trained in ("Combiner", "MoE") and free not in ("Combiner", "MoE", result.upper_bound_label(dataset))
    assert rows[trained][protocol(dataset).select_by] == max(rows[m][protocol(dataset).select_by] for m in ("Combiner", "MoE"))
    for method in (trained, free):
        ranks = frame[f"rank {method}"].to_numpy()
        if dataset == "fashioniq":
            for category, part in frame.groupby("category"):
                assert 100 * (part[f"rank {method}"] <= 10).mean() == pytest.approx(rows[method][f"{category} R@10"])
        else:
            assert 100 * (ranks <= 1).mean() == pytest.approx(rows[method]["R@1"])
    assert all(frame["edit types"].map(len) > 0) and all(frame["causes"].map(len) > 0)


def test_the_training_stage_runs_in_bf16_as_on_a_gpu_and_stays_near_float32(demo_run, tmp_path):
    """Stage 4 as a CUDA machine runs it (bf16 autocast, CUDA's float32 ops): the MoE crashed there (issue 13)."""
    config, result = demo_run
    low = dataclasses.replace(config, precision="bfloat16", runs=str(tmp_path / "runs"))
    for dataset, metric in (("fashioniq", "avg R@10"), ("cirr", "R@10")):
        for fusion, label in (("combiner", "Combiner"), ("moe", "MoE")):
            with cuda_float32_policy():
                run, metrics = _train(low, dataset, fusion)
            assert json.loads((run / "results.json").read_text())["config"]["precision"] == "bfloat16"
            assert abs(metrics[metric] - result.tables[dataset][label][metric]) <= 10, (dataset, label)


def test_the_expected_time_names_the_device_it_was_measured_on(monkeypatch):
    assert expected_time(DemoConfig(device="cpu")).startswith("Expected time on 2 CPU cores: about 6 minutes")
    monkeypatch.setattr("cirlib.apps.demo.resolve_device", lambda device: torch.device("cuda"))
    message = expected_time(DemoConfig())
    assert message.startswith("Expected time on a GPU") and "H200" in message and "CPU cores:" not in message
