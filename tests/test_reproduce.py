"""`cirlib reproduce`: missing data says where to get it; measured numbers match the evaluation paths."""

from __future__ import annotations

import pytest
import torch

from cirlib.cli import main
from cirlib.data import CIRR
from cirlib.encoders import load_encoder
from cirlib.evaluation.evaluate import evaluate_cirr
from cirlib.experiments.paper_numbers import paper_result
from cirlib.experiments.reproduce import format_comparison, reproduce
from cirlib.experiments.reproduce_config import MissingDatasetError, ReproduceConfig
from cirlib.experiments.reproduce_measure import scorer
from cirlib.features import FeatureCache, cirr_features
from cirlib.features.captions import captioned_split
from cirlib.fusion import image_only
from cirlib.metrics import cirr_recall
from cirlib.util.errors import CirlibError
from cirlib.weimocir import weighted_similarity
from cirlib.weimocir.select import held_out_choice
from cirlib.weimocir.sweeps import sweep

from .helpers import tiny_model_dir


def test_a_missing_dataset_is_one_line_naming_the_download_page_and_the_path(tmp_path):
    config = ReproduceConfig(dataset="cirr", method="sum", data_root=str(tmp_path / "cirr_dataset"))
    with pytest.raises(MissingDatasetError) as error:
        reproduce(config)
    message = str(error.value)
    assert "\n" not in message
    assert "https://github.com/Cuberick-Orz/CIRR" in message and str(tmp_path / "cirr_dataset") in message


def test_the_cli_prints_the_message_and_exits_2(tmp_path, capsys):
    code = main(["reproduce", "--dataset", "fashioniq", "--method", "sum", "--data-root", str(tmp_path)])
    assert code == 2
    assert "https://github.com/XiaoxiaoGuo/fashion-iq" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["captions", "checkpoint"])
def test_methods_say_what_they_need(tmp_path, missing):
    method = "weimocir" if missing == "captions" else "combiner"
    with pytest.raises(CirlibError, match=f"--{missing}"):
        reproduce(ReproduceConfig(dataset="cirr", method=method, data_root=str(tmp_path)))


def test_weimocir_at_alpha_0_beta_0_equals_image_only_evaluation(small_benchmark, tmp_path):
    """The one-cell sweep and the index-based evaluation agree where the methods coincide."""
    folder, _ = small_benchmark
    model_dir, _ = tiny_model_dir(tmp_path / "tiny")
    root = folder / "synth-cirr"
    config = ReproduceConfig(dataset="cirr", method="weimocir", data_root=str(root), model=str(model_dir),
                             pretrained=None, alpha=0.0, beta=0.0, captions=str(root / "gallery_captions" / "val.json"),
                             cache=str(tmp_path / "cache"), device="cpu")
    measured = reproduce(config)["measured"]
    encoder = load_encoder(str(model_dir), preprocess="clip", device="cpu")  # WeiMoCIR's, reproduce's default
    expected = evaluate_cirr(cirr_features(encoder, FeatureCache(tmp_path / "cache"), root, "val"), image_only)
    for name in ("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3"):
        assert measured[name] == pytest.approx(expected[name], abs=1e-6), name


def test_weimocir_at_alpha_other_than_beta_equals_the_plain_weighted_similarity(small_benchmark, tmp_path):
    """α = 0.7, β = 0.3: the metrics and the submission scorer are those of weighted_similarity at (α, β), which
    differ from those at (β, α), so a swap of the two cannot pass."""
    folder, _ = small_benchmark
    model_dir, _ = tiny_model_dir(tmp_path / "tiny")
    root, cache = folder / "synth-cirr", FeatureCache(tmp_path / "cache")
    config = ReproduceConfig(dataset="cirr", method="weimocir", data_root=str(root), model=str(model_dir),
                             pretrained=None, alpha=0.7, beta=0.3, captions=str(root / "gallery_captions" / "val.json"),
                             cache=str(tmp_path / "cache"), device="cpu")
    result = reproduce(config)
    measured = result["measured"]
    encoder = load_encoder(str(model_dir), preprocess="clip", device="cpu")
    features = cirr_features(encoder, cache, root, "val")
    image_path = lambda name: CIRR(root).image_path(name, "val")  # noqa: E731
    split = captioned_split(encoder, cache, "cirr", features, config.captions, "cirr-val", image_path)
    f, c = split.features, split.captions

    def plain(alpha: float, beta: float) -> torch.Tensor:
        return weighted_similarity(f.reference, f.text, f.gallery, c.gallery, alpha, beta)
    expected = cirr_recall(plain(0.7, 0.3), f.gallery_names, f.reference_names, f.target_names,
                           f.extra["img_set_members"])
    assert measured == pytest.approx(expected, abs=1e-6)
    scores = scorer(encoder, cache, config, features, image_path)(slice(None))
    torch.testing.assert_close(scores, plain(0.7, 0.3), atol=1e-5, rtol=0)
    assert not torch.allclose(plain(0.3, 0.7), plain(0.7, 0.3), atol=1e-3)
    # beside it: (α, β) chosen on held-out halves of val, and the best cell of val itself (an upper bound)
    held, choice = result["held-out choice"], held_out_choice(split, device="cpu")
    assert held["cells"] == [list(cell) for cell in choice.cells] and held["metrics"] == pytest.approx(choice.metrics)
    assert held["upper bound"]["metrics"] == pytest.approx(sweep(split, progress=False).at(*choice.upper_cell))
    lines = format_comparison(result).splitlines()
    assert lines[0].split() == ["metric", "paper", "measured", "held-out", "upper", "bound"]
    values = (measured, held["metrics"], held["upper bound"]["metrics"])
    assert next(line for line in lines if line.startswith("R@1 ")).split() == ["R@1", "-"] + [
        f"{metrics['R@1']:.2f}" for metrics in values]
    assert "measured: val split at α=0.7, β=0.3 (--alpha, --beta)" in lines
    assert any(line.startswith(f"held-out: {choice.cells_text()} (2-fold") for line in lines)


def test_comparison_table_quotes_the_paper_beside_the_measurement():
    paper = paper_result("cirr", "weimocir", "ViT-L-14", "laion2b_s32b_b82k")
    text = format_comparison({"paper": {"metrics": paper.metrics, "source": paper.source, "split": paper.split},
                              "paper note": "paper: WeiMoCIR slides", "measured": {"R@1": 12.5}})
    row = next(line for line in text.splitlines() if line.startswith("R@1 "))
    assert row.split() == ["R@1", "30.94", "12.50"]
    assert next(line for line in text.splitlines() if line.startswith("R@5 ")).split() == ["R@5", "60.87", "-"]
