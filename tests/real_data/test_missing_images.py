"""Missing images in real-data layouts: skipped (and counted in every result file) or a one-line error naming the
image and the flag, through `cirlib train`, `cirlib eval` and `cirlib zeroshot`; one cache entry per features,
whichever command (label) computed them first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cirlib.cli import main
from cirlib.data import DatasetError
from cirlib.encoders import load_encoder
from cirlib.experiments.job_features import val_features
from cirlib.features import FeatureCache, fashioniq_features
from cirlib.features import cache as cache_module
from cirlib.train.stage2 import FusionTrainConfig
from cirlib.train.triplets import cirr_triplets, fashioniq_triplets
from tests.helpers import tiny_model_dir
from tests.test_readers import FIQ_SPLIT, FIQ_VAL, circo_root, cirr_root, edit_json, fiq_root, write  # noqa: F401

GONE = "B0084Y8VFW"  # in two of the three FashionIQ triplets and in the gallery
FIQ_FILES = ("captions/cap.{category}.{split}.json", "image_splits/split.{category}.{split}.json")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("clip"))[0]


def fiq_listing(split: str, categories=("dress",)) -> dict[str, list[str]]:
    """The listing files of ``split`` that lack GONE, as ``missing_summary`` names them."""
    return {f.format(category=c, split=split): [GONE] for c in categories for f in FIQ_FILES}


def one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def fusion_yaml(tmp_path: Path, root: Path, model: Path, extra: str = "") -> Path:
    path = tmp_path / "combiner.yaml"
    path.write_text(f"kind: fusion\ndataset: fashioniq\ncategories: [dress]\ndata_root: {root}\nmodel: {model}\n"
                    f"cache: {tmp_path / 'cache'}\nout: {tmp_path / 'run'}\nepochs: 1\nbatch_size: 1\ndevice: cpu\n"
                    "fusion: combiner\nfusion_options: {projection_dim: 8, hidden_dim: 8}\n" + extra)
    return path


def with_train_split(root: Path) -> Path:
    """The readers' FashionIQ fixture plus a dress train split (its val files again)."""
    write(root, {"captions/cap.dress.train.json": FIQ_VAL, "image_splits/split.dress.train.json": FIQ_SPLIT})
    return root


@pytest.fixture
def fiq_train_root(fiq_root: Path) -> Path:  # noqa: F811
    """:func:`with_train_split`, GONE deleted."""
    (fiq_root / "images" / f"{GONE}.png").unlink()
    return with_train_split(fiq_root)


def test_train_and_eval_skip_with_a_config_field_and_count_the_skipped_images(fiq_train_root, model, tmp_path,
                                                                            capsys):
    config = fusion_yaml(tmp_path, fiq_train_root, model, "on_missing: skip\n")
    assert main(["train", "--config", str(config)]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train triplets"] == 1  # of 3: two need the absent image
    assert results["missing"] == {"train": {"skipped images": 1, "files": fiq_listing("train")},
                                  "val": {"skipped images": 1, "files": fiq_listing("val")}}
    out = tmp_path / "results"
    assert main(["eval", "--run", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
                 "--results", str(out)]) == 0  # the run's on_missing: skip
    evaluated = json.loads((out / "eval_run_best.json").read_text())
    assert evaluated["missing"] == {"skipped images": 1, "files": fiq_listing("val")}
    assert evaluated["metrics"] == pytest.approx({k: results["best"][k] for k in evaluated["metrics"]})
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), "--results", str(out),
                 "--on-missing", "error"]) == 2
    one_line_error(capsys, "cap.dress.val.json", GONE, "--on-missing skip", "on_missing: skip")


def test_train_stops_in_one_line_naming_the_image_and_the_flag_which_overrides_the_config(fiq_train_root, model,
                                                                                        tmp_path, capsys):
    config = fusion_yaml(tmp_path, fiq_train_root, model)
    assert main(["train", "--config", str(config)]) == 2
    one_line_error(capsys, "cap.dress.train.json", GONE, "2 of its 3 triplets", "--on-missing skip",
                   "on_missing: skip")
    assert main(["train", "--config", str(config), "--on-missing", "skip"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["on_missing"] == "skip" and results["missing"]["train"]["skipped images"] == 1


def test_nothing_skipped_is_an_empty_report(fiq_root, model, tmp_path):  # noqa: F811
    config = fusion_yaml(tmp_path, with_train_split(fiq_root), model, "on_missing: skip\n")
    assert main(["train", "--config", str(config)]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train triplets"] == 3
    assert results["missing"] == {"train": {"skipped images": 0, "files": {}},
                                  "val": {"skipped images": 0, "files": {}}}


@pytest.fixture
def benchmark(tmp_path, fiq_root, cirr_root, circo_root) -> Path:  # noqa: F811
    """The readers' three fixtures as a benchmark folder; FashionIQ lacks GONE (all categories share the images),
    CIRR lacks dev-0-0-img0, needed by pair 0 only; CIRCO lacks nothing."""
    for category in ("shirt", "toptee"):
        write(fiq_root, {f"captions/cap.{category}.val.json": FIQ_VAL,
                         f"image_splits/split.{category}.val.json": FIQ_SPLIT})
    (fiq_root / "images" / f"{GONE}.png").unlink()
    edit_json(cirr_root / "cirr/captions/cap.rc2.val.json",
              lambda d: d[1]["img_set"].update(members=["dev-0-2-img0", "dev-0-4-img0"]))
    (cirr_root / "dev" / "dev-0-0-img0.png").unlink()
    folder = tmp_path / "benchmark"
    folder.mkdir()
    for name, root in (("synth-fashioniq", fiq_root), ("synth-cirr", cirr_root), ("synth-circo", circo_root)):
        (folder / name).symlink_to(root, target_is_directory=True)
    return folder


def test_zeroshot_skips_per_dataset_and_reports_each(benchmark, model, tmp_path, capsys):
    command = ["zeroshot", "--out", str(benchmark), "--model", str(model), "--cache", str(tmp_path / "cache"),
               "--results", str(tmp_path / "results"), "--device", "cpu"]
    assert main(command) == 2
    one_line_error(capsys, "cap.dress.val.json", GONE, "--on-missing skip")
    assert main([*command, "--on-missing", "skip"]) == 0
    saved = json.loads((tmp_path / "results" / "zero_shot.json").read_text())
    cirr_files = ("cirr/captions/cap.rc2.val.json", "cirr/image_splits/split.rc2.val.json")
    assert saved["missing"] == {
        "fashioniq": {"skipped images": 1, "files": fiq_listing("val", ("dress", "shirt", "toptee"))},
        "cirr": {"skipped images": 1, "files": {f: ["dev-0-0-img0"] for f in cirr_files}},
        "circo": {"skipped images": 0, "files": {}}}
    # One FashionIQ query (B003FGW7MK -> B008BHCT58) over a 3-image gallery, one CIRR query over 5 images.
    assert saved["results"]["fashioniq"]["sum"]["dress R@10"] == 100.0
    assert saved["results"]["cirr"]["sum"]["R@50"] == 100.0 and saved["results"]["cirr"]["sum"]["Rsubset@1"] == 100.0


def test_cirr_training_triplets_skip_or_name_the_flag(cirr_root, model, tmp_path):  # noqa: F811
    (cirr_root / "train" / "34" / "train-10108-3-img0.png").unlink()  # an img_set member of the only triplet
    encoder, cache = load_encoder(str(model), device="cpu"), FeatureCache(tmp_path / "cache")
    with pytest.raises(DatasetError, match="--on-missing skip"):
        cirr_triplets(encoder, cache, cirr_root)
    with pytest.warns(UserWarning, match="dropped 1 of 1 triplets"):
        skipped = cirr_triplets(encoder, cache, cirr_root, on_missing="skip")
    assert len(skipped) == 0 and skipped.reference.dtype == torch.long and skipped.texts.shape == (0, 1, 32)
    assert skipped.missing == {
        "cirr/captions/cap.rc2.train.json": ["train-10108-3-img0"],
        "cirr/image_splits/split.rc2.train.json": ["train-10108-3-img0"]}


def test_train_eval_reproduce_and_zeroshot_labels_share_one_cache_entry(fiq_root, model, tmp_path,  # noqa: F811
                                                                       monkeypatch):
    encoded = {"images": 0, "texts": 0}

    def counting(kind, encode):
        def wrapper(encoder, items, **options):
            encoded[kind] += len(items)
            return encode(encoder, items, **options)
        return wrapper
    monkeypatch.setattr(cache_module, "encode_images", counting("images", cache_module.encode_images))
    monkeypatch.setattr(cache_module, "encode_texts", counting("texts", cache_module.encode_texts))
    encoder, cache = load_encoder(str(model), device="cpu"), FeatureCache(tmp_path / "cache")
    config = FusionTrainConfig(dataset="fashioniq", categories=["dress"], data_root=str(fiq_root))
    trained = val_features(encoder, cache, config)["dress"]  # `cirlib train` and `cirlib eval`
    assert encoded == {"images": 4, "texts": 3}
    reproduced = fashioniq_features(encoder, cache, fiq_root, "dress", "val")  # `cirlib reproduce`'s label
    zeroshot = fashioniq_features(encoder, cache, fiq_root, "dress", "val", dataset="synth-fashioniq")
    assert encoded == {"images": 4, "texts": 3}, "the same features were encoded again under another label"
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # one images entry, one texts entry
    for other in (reproduced, zeroshot):
        assert other.gallery.equal(trained.gallery) and other.text.equal(trained.text)
    triplets = fashioniq_triplets(encoder, cache, fiq_root, "val", ["dress"], dataset="x")  # `cirlib train`'s forms
    assert encoded["images"] == 4, "the training triplets encoded the val images again"
    assert triplets.images.equal(trained.gallery)
    torch.testing.assert_close(triplets.texts[:, 0], trained.text)  # form 0 is the val query text (other batching)
