"""`cirlib reproduce` as a user with a downloaded dataset runs it: a model folder without --pretrained, the paper's
settings by default (rows only for the paper's exact weights), a checkpoint's settings used and every mismatch
refused in one line, test-server submissions written (ids as ``str(int(id))``), results named by their settings,
skipped images counted, and ``--debug`` for the traceback. Tiny fixtures in the official layouts, a tiny CLIP."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cirlib.cli import main
from cirlib.data import MissingImagesWarning
from cirlib.encoders import load_encoder
from cirlib.evaluation.evaluate import evaluate_cirr
from cirlib.experiments import reproduce as reproduce_module
from cirlib.experiments.jobs import fusion_method
from cirlib.experiments.paper_numbers import paper_result
from cirlib.experiments.reproduce import format_comparison, reproduce
from cirlib.experiments.reproduce_config import MissingDatasetError, ReproduceConfig, resolve_settings
from cirlib.features import FeatureCache, circo_features, cirr_features
from cirlib.fusion import build_fusion, sum_fusion
from cirlib.metrics import cirr_rankings, rank_gallery, write_circo_submission, write_cirr_submission
from cirlib.train.checkpoint import save_checkpoint
from cirlib.train.stage2 import FusionTrainConfig, load_trained_fusion
from cirlib.util.errors import CirlibError
from tests.helpers import tiny_model_dir
from tests.test_readers import circo_root, cirr_root, edit_json, write  # noqa: F401  (fixtures)

LAION = {"ViT-B-32": "laion2b_s34b_b79k", "ViT-L-14": "laion2b_s32b_b82k", "ViT-H-14": "laion2b_s32b_b79k",
         "ViT-bigG-14": "laion2b_s39b_b160k"}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("clip"))[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def png(i: int) -> bytes:
    """A small image of its own colour, so that every gallery image has its own features."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), ((37 * i) % 256, (91 * i + 40) % 256, (173 * i + 80) % 256)).save(buffer, format="PNG")
    return buffer.getvalue()


def cli(*arguments: str | Path) -> int:
    return main(["reproduce", *map(str, arguments)])


def run_args(root: Path, model: Path, cache: Path, results: Path, *extra: str | Path) -> list[str | Path]:
    return ["--dataset", "cirr", "--data-root", root, "--model", model, "--cache", cache, "--results", results,
            "--device", "cpu", *extra]


def saved(results: Path) -> list[dict]:
    """The result files in ``results`` (not the submission files beside them)."""
    return [json.loads(path.read_text()) for path in sorted(results.glob("reproduce_*.json"))
            if re.fullmatch(r"reproduce_.+_[0-9a-f]{8}\.json", path.name)]


def one_line_error(capsys, *fragments: str) -> None:
    """stderr ends with one "error:" line holding ``fragments`` (progress bars may come before it), no traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:] and "Traceback" not in lines, lines
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"


# ---- a model folder, the paper's settings, the paper's row --------------------------------------------------------

def test_a_model_folder_runs_without_pretrained_and_prints_every_cirr_number(cirr_root, model, cache, tmp_path,
                                                                            capsys):
    results = tmp_path / "results"
    assert cli("--method", "sum", *run_args(cirr_root, model, cache, results)) == 0
    (result,) = saved(results)
    assert result["config"]["pretrained"] is None and result["config"]["preprocess"] == "clip"  # WeiMoCIR's
    encoder = load_encoder(str(model), preprocess="clip", device="cpu")
    expected = evaluate_cirr(cirr_features(encoder, FeatureCache(cache), cirr_root, "val"), sum_fusion)
    assert result["measured"] == pytest.approx(expected, abs=1e-9)
    assert result["missing"] == {"skipped images": 0, "files": {}}
    rows = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"R@1", "R@50", "Rsubset@1", "Rsubset@3", "Avg"} <= rows


def test_defaults_are_the_papers_weights_and_preprocessing_never_random_weights(cirr_root, model):
    def resolved(method, **given):
        extra = {"captions": "captions.json"} if method == "weimocir" else {}
        return resolve_settings(ReproduceConfig(dataset="cirr", method=method, data_root=str(cirr_root),
                                                **extra, **given))

    config = resolved("weimocir")
    assert (config.model, config.pretrained, config.preprocess) == ("ViT-L-14", LAION["ViT-L-14"], "clip")
    assert resolved("sum", model="ViT-bigG-14").pretrained == LAION["ViT-bigG-14"]
    assert resolved("sum", model="ViT-B-32", preprocess="targetpad").preprocess == "targetpad"
    assert resolved("text-only", model=str(model)).pretrained is None
    with pytest.raises(CirlibError, match=r"--model RN50 is an open_clip architecture without weights.*--pretrained"
                                          r".*ViT-L-14 laion2b_s32b_b82k"):
        resolved("sum", model="RN50")
    with pytest.raises(CirlibError, match="--split test1 is not a fashioniq split"):
        resolve_settings(ReproduceConfig(dataset="fashioniq", method="sum", data_root=str(cirr_root), split="test1"))


def test_the_paper_row_needs_the_papers_exact_weights(cirr_root, model, cache, tmp_path):
    assert paper_result("cirr", "weimocir", "ViT-L-14", LAION["ViT-L-14"]).metrics["R@1"] == 30.94
    assert paper_result("cirr", "weimocir", "ViT-L-14", "openai") is None
    assert paper_result("cirr", "weimocir", "ViT-H-14", LAION["ViT-H-14"]).metrics["Rsubset@1"] == 57.23
    assert paper_result("fashioniq", "combiner", "RN50x4", "openai").metrics["avg R@10"] == 38.52
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps([{"candidate": f"dev-0-{i}-img{i % 2}", "captions": [f"photo {i}", "a", "b"]}
                                    for i in range(6)]))
    result = reproduce(ReproduceConfig(dataset="cirr", method="weimocir", data_root=str(cirr_root), model=str(model),
                                       captions=str(captions), cache=str(cache), device="cpu"))
    assert result["paper"] is None
    assert all(f"{name} {tag}" in result["paper note"] for name, tag in LAION.items())
    text = format_comparison(result)
    assert result["paper note"] in text and "Rsubset@2" in text and "Avg" in text


def test_the_comparison_prints_measured_rsubset_and_avg_where_the_paper_quotes_none():
    quoted = paper_result("cirr", "weimocir", "ViT-B-32", LAION["ViT-B-32"])
    assert "Rsubset@1" not in quoted.metrics
    result = {"paper": {"metrics": quoted.metrics}, "paper note": "paper: ...", "split": "val",
              "measured": {"R@1": 12.5, "R@5": 40.0, "Rsubset@1": 50.0, "Avg": 45.0}}
    rows = {line.split()[0]: line.split()[1:] for line in format_comparison(result).splitlines()[1:-2]}
    assert rows["R@1"] == ["26.31", "12.50"] and rows["R@50"] == ["91.01", "-"]
    assert rows["Rsubset@1"] == ["-", "50.00"] and rows["Avg"] == ["-", "45.00"]


# ---- checkpoints: their settings are the defaults, mismatches are refused --------------------------------------

def checkpoint(folder: Path, root: Path, model: Path, fusion: str = "combiner", dataset: str = "cirr",
               embed_dim: int = 32) -> Path:
    """A fusion checkpoint as `cirlib train` writes it (record: epoch, config, embed_dim), untrained."""
    torch.manual_seed(0)
    options = {"projection_dim": 16, "hidden_dim": 16}
    config = FusionTrainConfig(dataset=dataset, data_root=str(root), model=str(model), preprocess="targetpad",
                               fusion=fusion, fusion_options=options, device="cpu")
    return save_checkpoint(folder / f"{fusion}-{dataset}-{embed_dim}.safetensors",
                           build_fusion(fusion, embed_dim, **options), None,
                           {"epoch": 1, "config": config.to_json(), "embed_dim": embed_dim})


def test_a_checkpoint_gives_its_encoder_settings_and_scores_as_the_evaluation_does(cirr_root, model, cache, tmp_path):
    path = checkpoint(tmp_path, cirr_root, model)
    result = reproduce(ReproduceConfig(dataset="cirr", method="combiner", data_root=str(cirr_root),
                                       checkpoint=str(path), cache=str(cache), device="cpu"))
    assert (result["config"]["model"], result["config"]["preprocess"]) == (str(model), "targetpad")
    encoder = load_encoder(str(model), preprocess="targetpad", device="cpu")
    features = cirr_features(encoder, FeatureCache(cache), cirr_root, "val")
    assert result["measured"] == pytest.approx(evaluate_cirr(features, fusion_method(load_trained_fusion(path)[0])),
                                               abs=1e-9)


@pytest.mark.parametrize("case", ["fusion", "dataset", "model", "preprocess", "width", "stage-1 encoder"])
def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line_and_nothing_is_written(case, cirr_root, model, cache,
                                                                                      tmp_path, capsys):
    method, extra, fragments = "combiner", [], []
    if case == "fusion":
        path, method = checkpoint(tmp_path, cirr_root, model), "moe"
        fragments = ["'combiner' fusion", "--method combiner"]
    elif case == "dataset":
        path, fragments = checkpoint(tmp_path, cirr_root, model, dataset="fashioniq"), ["trained on fashioniq"]
    elif case == "model":
        other = tiny_model_dir(tmp_path / "other", seed=1)[0]
        path, extra, fragments = checkpoint(tmp_path, cirr_root, other), ["--model", str(model)], ["model", str(other)]
    elif case == "preprocess":
        path, extra, fragments = checkpoint(tmp_path, cirr_root, model), ["--preprocess", "clip"], ["--preprocess"]
    elif case == "width":
        path, fragments = checkpoint(tmp_path, cirr_root, model, embed_dim=64), ["64-d features", "32-d"]
    else:  # CLIP4Cir's stage-1 file {"epoch", "CLIP": state_dict}, which belongs in --pretrained
        path, fragments = tmp_path / "tuned_clip_best.pt", ["stage-1", "--pretrained"]
        torch.save({"epoch": 3, "CLIP": {"visual.proj": torch.zeros(4, 2)}}, path)
    results = tmp_path / "results"
    arguments = ["--dataset", "cirr", "--data-root", cirr_root, "--cache", cache, "--results", results,
                 "--device", "cpu", "--method", method, "--checkpoint", path, *extra]
    assert cli(*arguments) == 2
    one_line_error(capsys, str(path), *fragments)
    assert not results.exists()


# ---- test splits: the submission files --------------------------------------------------------------------------

CIRR_SETS = 9  # 54 test1 images: a top 50 without the reference needs at least 51


@pytest.fixture
def cirr_test1(cirr_root) -> Path:
    """The CIRR fixture with a test1 split large enough to submit: 9 img_sets of 6, one query per set."""
    sets = [[f"test1-{s}-{m}-img{m % 2}" for m in range(6)] for s in range(CIRR_SETS)]
    queries = [{"pairid": 100 + 7 * s, "reference": members[s % 6], "caption": f"make it look like number {s}",
                "img_set": {"id": s, "members": members, "reference_rank": s % 6}} for s, members in enumerate(sets)]
    names = [name for members in sets for name in members]
    write(cirr_root, {"cirr/captions/cap.rc2.test1.json": json.dumps(queries),
                      "cirr/image_splits/split.rc2.test1.json": json.dumps({n: f"./test1/{n}.png" for n in names}),
                      **{f"test1/{name}.png": png(i) for i, name in enumerate(names)}})
    return cirr_root


def test_cirr_test1_writes_both_submission_files_ranked_as_the_metrics_rank(cirr_test1, model, cache, tmp_path,
                                                                           capsys):
    results = tmp_path / "results"
    assert cli("--method", "sum", "--split", "test1", *run_args(cirr_test1, model, cache, results)) == 0
    (result,) = saved(results)
    recall_path, subset_path = map(Path, result["submission"])
    assert recall_path.name == f"{result['name']}_recall.json" and subset_path.parent == results
    recall, subset = json.loads(recall_path.read_text()), json.loads(subset_path.read_text())
    features = cirr_features(load_encoder(str(model), preprocess="clip", device="cpu"), FeatureCache(cache),
                             cirr_test1, "test1")
    similarity = sum_fusion(features.reference, features.text) @ F.normalize(features.gallery, dim=-1).T
    top50, top3 = cirr_rankings(similarity, features.gallery_names, features.reference_names,
                                features.extra["img_set_members"], 50, 3)
    keys = [str(100 + 7 * s) for s in range(CIRR_SETS)]
    assert recall == {"version": "rc2", "metric": "recall", **dict(zip(keys, top50))}
    assert subset == {"version": "rc2", "metric": "recall_subset", **dict(zip(keys, top3))}
    assert all(ref not in recall[key] and len(set(recall[key])) == 50
               for key, ref in zip(keys, features.reference_names))
    assert result["measured"] == {} and str(recall_path) in capsys.readouterr().out


def test_circo_test_writes_its_submission_file(circo_root, model, cache, tmp_path):
    ids = [1000 + 13 * i for i in range(60)]
    info = {"images": [{"id": i, "file_name": f"{i:012d}.png"} for i in ids]}
    queries = [{"id": q, "reference_img_id": ids[5 * q], "relative_caption": f"has {q} more", "shared_concept": "x"}
               for q in range(4)]
    write(circo_root, {"COCO2017_unlabeled/annotations/image_info_unlabeled2017.json": json.dumps(info),
                       "annotations/test.json": json.dumps(queries),
                       **{f"COCO2017_unlabeled/unlabeled2017/{i:012d}.png": png(i) for i in ids}})
    result = reproduce(ReproduceConfig(dataset="circo", method="image-only", data_root=str(circo_root),
                                       model=str(model), split="test", cache=str(cache), device="cpu",
                                       results=str(tmp_path)))
    (path,) = map(Path, result["submission"])
    features = circo_features(load_encoder(str(model), preprocess="clip", device="cpu"), FeatureCache(cache),
                              circo_root, "test")
    ranked = rank_gallery(features.reference @ F.normalize(features.gallery, dim=-1).T, features.gallery_names, 50)
    assert json.loads(path.read_text()) == {str(q): [str(i) for i in row] for q, row in enumerate(ranked)}
    assert all(json.loads(path.read_text())[str(q)][0] == str(ids[5 * q]) for q in range(4))  # SEARLE: kept


def test_a_test_split_with_a_skipped_query_is_refused_not_submitted_incomplete(cirr_test1, model, cache, tmp_path,
                                                                              capsys):
    (cirr_test1 / "test1" / "test1-3-3-img1.png").unlink()  # the reference of pair 121
    results = tmp_path / "results"
    with pytest.warns(MissingImagesWarning, match="test1-3-3-img1"):
        assert cli("--method", "sum", "--split", "test1", "--on-missing", "skip",
                   *run_args(cirr_test1, model, cache, results)) == 2
    one_line_error(capsys, "cap.rc2.test1.json", "test1-3-3-img1", "server rejects")
    assert not results.exists()


def test_submission_ids_of_any_integer_type_are_written_as_plain_integers(tmp_path):
    names = [[f"img{q}-{i}" for i in range(50)] for q in range(3)]
    recall, _ = write_cirr_submission(tmp_path / "cirr", [torch.tensor(12063), np.int64(7), "8"], names,
                                      [row[:3] for row in names], expected_pair_ids=[7, 8, 12063])
    assert list(json.loads(recall.read_text()))[2:] == ["12063", "7", "8"]
    path = write_circo_submission(tmp_path / "circo.json", [np.int32(3)], [[torch.tensor(i) for i in range(50)]])
    assert json.loads(path.read_text()) == {"3": [str(i) for i in range(50)]}
    with pytest.raises(ValueError, match=r"query id 1.5 is not an integer"):
        write_circo_submission(tmp_path / "bad.json", [1.5], [list(range(50))])


# ---- results named by their settings, missing images, --debug ---------------------------------------------------

def test_runs_with_other_settings_keep_their_own_result_files(cirr_root, model, cache, tmp_path):
    results = tmp_path / "results"
    for preprocess in ("clip", "targetpad", "clip"):
        assert cli("--method", "sum", "--preprocess", preprocess, *run_args(cirr_root, model, cache, results)) == 0
    files = sorted(results.glob("reproduce_cirr_sum_val_*.json"))
    assert len(files) == 2  # the third run has the first one's settings: same name
    assert {saved_result["config"]["preprocess"] for saved_result in saved(results)} == {"clip", "targetpad"}


def test_missing_images_stop_in_one_line_or_are_skipped_and_counted(cirr_root, model, cache, tmp_path, capsys):
    edit_json(cirr_root / "cirr/captions/cap.rc2.val.json",
              lambda pairs: pairs[1]["img_set"].update(members=["dev-0-2-img0", "dev-0-4-img0"]))
    (cirr_root / "dev" / "dev-0-0-img0.png").unlink()  # only pair 0 needs it
    results = tmp_path / "results"
    assert cli("--method", "image-only", *run_args(cirr_root, model, cache, results)) == 2
    one_line_error(capsys, "dev-0-0-img0", "--on-missing skip")
    with pytest.warns(MissingImagesWarning, match="dev-0-0-img0"):
        assert cli("--method", "image-only", "--on-missing", "skip", *run_args(cirr_root, model, cache, results)) == 0
    (result,) = saved(results)
    assert result["config"]["on_missing"] == "skip" and result["missing"]["skipped images"] == 1
    assert "skipped 1 missing images" in capsys.readouterr().out


def test_errors_are_one_line_with_status_2_and_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    arguments = ["reproduce", "--dataset", "circo", "--method", "sum", "--data-root", str(tmp_path / "none")]
    assert main(arguments) == 2
    one_line_error(capsys, "https://github.com/miccunifi/CIRCO")
    with pytest.raises(MissingDatasetError):
        main(["--debug", *arguments])

    def broken(config):
        raise RuntimeError("size mismatch\n" + "shape detail\n" * 50)

    monkeypatch.setattr(reproduce_module, "resolve_settings", broken)
    assert main(arguments) == 2
    one_line_error(capsys, "RuntimeError: size mismatch", "--debug")
    with pytest.raises(RuntimeError):
        main(["--debug", *arguments])
