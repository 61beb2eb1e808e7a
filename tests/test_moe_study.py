"""The MoE's balancing losses and z-loss, the balance summary, and the gating study end to end on the tiny benchmark."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cirlib.analysis.gating import balance_summary, expert_off_method
from cirlib.evaluation import evaluate_split
from cirlib.experiments.moe_study import (
    KNOCKOUT,
    SUMMARY_COLUMNS,
    VARIANTS,
    MoEStudyConfig,
    analyse_routing,
    run_moe_study,
    study_runs,
    study_tables,
    summary_table,
)
from cirlib.fusion import MoECombiner, fuse
from cirlib.fusion.moe import router_z_loss, switch_loss
from cirlib.util.config import load_config
from cirlib.util.errors import ConfigError


def test_switch_loss_is_one_when_balanced_and_e_when_one_expert_takes_everything():
    balanced = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert switch_loss(balanced, torch.zeros(2, 4)).item() == pytest.approx(1.0)
    collapsed = F.one_hot(torch.zeros(8, dtype=torch.long), 4).float()
    assert switch_loss(collapsed, torch.tensor([[50.0, 0, 0, 0]]).repeat(8, 1)).item() == pytest.approx(4.0)
    # f = (3/4, 1/4, 0, 0) with uniform probabilities P = 1/4: E * sum f P = 1 (only P carries the gradient)
    skewed = F.one_hot(torch.tensor([0, 0, 0, 1]), 4).float()
    assert switch_loss(skewed, torch.zeros(4, 4)).item() == pytest.approx(1.0)


def test_z_loss_is_the_mean_squared_logsumexp():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, float("-inf"), 0.0, 0.0]])
    expected = (math.log(4) ** 2 + math.log(math.exp(2) + 2) ** 2) / 2
    assert router_z_loss(logits).item() == pytest.approx(expected)


@pytest.mark.parametrize("options", [{"load_balance_weight": 0.1, "balance_loss": "switch"},
                                     {"z_loss_weight": 0.01}])
def test_each_auxiliary_loss_reaches_training_and_moves_the_router(options):
    torch.manual_seed(0)
    model = MoECombiner(16, projection_dim=8, hidden_dim=12, **options).train()
    image, text = torch.randn(32, 16), torch.randn(32, 16)
    _, aux = fuse(model, image, text)
    assert aux is not None and aux.item() > 0
    aux.backward()
    assert model.router.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown balance_loss 'nope'"):
        MoECombiner(16, projection_dim=8, hidden_dim=12, balance_loss="nope")


def test_balance_summary_of_a_balanced_and_a_collapsed_router():
    balanced = F.one_hot(torch.arange(8) % 4, 4).float()
    assert balance_summary(balanced) == pytest.approx({"top share": 0.25, "top entropy": 1.0, "importance CV": 0.0})
    collapsed = F.one_hot(torch.zeros(8, dtype=torch.long), 4).float()
    assert balance_summary(collapsed) == pytest.approx({"top share": 1.0, "top entropy": 0.0,
                                                        "importance CV": math.sqrt(3)})


def _base_config(tmp_path, root, model, dataset: str) -> str:
    path = tmp_path / f"moe_{dataset}.yaml"
    data = root / ("synth-fashioniq" if dataset == "fashioniq" else "synth-cirr")
    path.write_text(f"kind: fusion\ndataset: {dataset}\ndata_root: {data}\nmodel: {model}\n"
                    f"cache: {tmp_path / 'cache'}\n"
                    "fusion: moe\nfusion_options: {projection_dim: 16, hidden_dim: 24, heads: 2, dropout: 0.1}\n"
                    "epochs: 3\nbatch_size: 32\nlr: 0.001\ndevice: cpu\nout: unused\n")
    return str(path)


def test_the_shipped_study_config_runs_every_variant_of_the_module():
    config = load_config(MoEStudyConfig, "configs/studies/moe_gating.yaml")
    assert config.variants == VARIANTS and config.variants["default"] == {}
    runs = study_runs(config)
    assert len(runs) == len(VARIANTS) * 2 * 3 and len({run.out for _, run in runs}) == len(runs)


def test_study_config_is_validated_whole_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"variants.bad.top_kk"):
        MoEStudyConfig(variants={"bad": {"top_kk": 1}})
    with pytest.raises(ConfigError, match=r"variants.has space"):
        MoEStudyConfig(variants={"has space": {}})
    with pytest.raises(ConfigError, match="seeds"):
        MoEStudyConfig(seeds=[])
    combiner = tmp_path / "combiner.yaml"
    combiner.write_text("kind: fusion\nfusion: combiner\ndata_root: data\n")
    with pytest.raises(ConfigError, match="fusion.*moe"):
        study_runs(MoEStudyConfig(configs=[str(combiner)]))
    with pytest.raises(ConfigError, match=r"variants.a.top_k"):  # the options' types, from the MoE's constructor
        MoEStudyConfig(variants={"a": {"top_k": "two"}})


def test_the_study_trains_analyses_and_reuses_its_runs(small_benchmark, tmp_path):
    from tests.helpers import tiny_model_dir

    root, _ = small_benchmark
    model = tiny_model_dir(tmp_path / "clip")[0]
    study = tmp_path / "study.yaml"
    study.write_text(f"kind: moe_study\nconfigs: [{_base_config(tmp_path, root, model, 'fashioniq')}, "
                     f"{_base_config(tmp_path, root, model, 'cirr')}]\n"
                     "variants: {default: {}, importance-1: {load_balance_weight: 1.0}}\n"
                     f"seeds: [0]\nepochs: 1\nruns: {tmp_path / 'runs'}\nresults: {tmp_path / 'results'}\n")
    config = load_config(MoEStudyConfig, study)
    summary = run_moe_study(config, progress=False)
    written = json.loads((tmp_path / "results" / "moe_study.json").read_text())
    assert list(written) == ["config", "runs", "tables"] and written["config"] == config.to_json()
    assert len(written["runs"]) == 2 * 2 and (tmp_path / "results" / "moe_study_routing.png").stat().st_size > 0
    for record in written["runs"]:
        analysis, row = record["analysis"], record["row"]
        assert len(analysis["knockout"]) == 4 and 0 <= analysis["nmi_edit_type"] <= 1 and 0 <= analysis["nmi_cause"] <= 1
        table = np.asarray(analysis["by_edit_type"])
        assert np.allclose(table.sum(axis=1), 1.0)  # every query's router weights sum to 1
        assert row["largest knockout cost"] >= row["second knockout cost"]
        assert record["best epoch"] == 1  # the study's epochs override the base config's 3
    markdown = (tmp_path / "results" / "moe_study.md").read_text()
    assert markdown.count("| importance-1 |") == 3 and "seeds [0]" in markdown  # the summary, then per dataset
    assert "| variant | avg R@10 / R@10 | top share |" in markdown
    best = {r["out"]: (tmp_path / r["out"] / "best.safetensors").stat().st_mtime_ns for r in written["runs"]}
    again = run_moe_study(config, progress=False)  # finished runs are reused, numbers unchanged
    assert {r["out"]: (tmp_path / r["out"] / "best.safetensors").stat().st_mtime_ns for r in again["runs"]} == best
    assert [r["row"] for r in again["runs"]] == [r["row"] for r in summary["runs"]]


def test_tables_give_mean_and_sample_std_over_seeds():
    records = [{"dataset": "cirr", "variant": v, "seed": s, "row": {"R@1": r, "top share": t}}
               for v, s, r, t in [("a", 0, 10.0, 0.5), ("a", 1, 12.0, 0.7), ("b", 0, 9.0, 0.25)]]
    table = study_tables(records)["cirr"].splitlines()
    assert table[0].startswith("cirr (val, best epoch; mean ± std over seeds [0, 1])")
    assert table[4] == "| a | 11.0 ± 1.4 | 0.600 ± 0.141 |" and table[5] == "| b | 9.0 ± 0.0 | 0.250 ± 0.000 |"
    rows = [{**r, "dataset": "fashioniq", "row": {"avg R@10": r["row"]["R@1"] + 40, **{c: 1.0 for c in
                                                                                      SUMMARY_COLUMNS}}}
            for r in records] + [{**r, "row": {"R@10": r["row"]["R@1"], **{c: 0.5 for c in SUMMARY_COLUMNS}}}
                                 for r in records]
    summary = summary_table(rows).splitlines()
    assert summary[2].startswith("| variant | avg R@10 / R@10 | top share | NMI edit type |")
    assert summary[4].startswith("| a | 51.0 ± 1.4 / 11.0 ± 1.4 | 1.000 ± 0.000 / 0.500 ± 0.000 |")


def test_knockouts_equal_evaluating_with_the_expert_switched_off(small_benchmark, tmp_path):
    from cirlib.analysis.edits import query_groups
    from cirlib.encoders import load_encoder
    from cirlib.experiments.job_features import val_features
    from cirlib.experiments.moe_study import query_texts
    from cirlib.features import FeatureCache
    from tests.helpers import tiny_model_dir

    root, _ = small_benchmark
    model_dir = tiny_model_dir(tmp_path / "clip")[0]
    _, base = study_runs(MoEStudyConfig(configs=[_base_config(tmp_path, root, model_dir, "cirr")],
                                        variants={"default": {}}, seeds=[0]))[0]
    features = val_features(load_encoder(str(model_dir)), FeatureCache(tmp_path / "cache", progress=False), base)
    torch.manual_seed(0)
    model = MoECombiner(features.text.shape[1], projection_dim=16, hidden_dim=24, heads=2).eval()
    types, causes = query_groups("cirr", base.data_root, query_texts(features))
    analysis = analyse_routing(model, "cirr", features, types, causes)
    for expert in range(4):
        assert analysis.knockout[expert] == evaluate_split("cirr", features, expert_off_method(model, expert))[KNOCKOUT["cirr"]]
    assert analysis.recall["R@10"] == evaluate_split("cirr", features, lambda v, t: model(v, t).detach())["R@10"]
