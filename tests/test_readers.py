"""Readers of FashionIQ, CIRR, CIRCO and gallery caption files, over tiny trees written like the releases."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from cirlib.data import (
    CIRCO,
    CIRR,
    CIRCOQuery,
    CIRRTriplet,
    DatasetError,
    FashionIQ,
    FashionIQTriplet,
    ImgSet,
    MissingImagesWarning,
    captions_for,
    fashioniq_query_text,
    fashioniq_query_texts_both_orders,
    read_gallery_captions,
)


def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


PNG, JPG = _image_bytes("PNG"), _image_bytes("JPEG")


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def assert_error(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "Fix:" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- FashionIQ -------------------------------------------------------------------------------

FIQ_VAL = """[
  {"target": "B008BHCT58", "candidate": "B003FGW7MK", "captions": ["is solid black with no sleeves", "is black with straps"]},
  {"target": "B0084Y8VFW", "candidate": "B00A3F3KKY", "captions": ["is red.", "has shorter sleeves?"]},
  {"target": "B003FGW7MK", "candidate": "B0084Y8VFW", "captions": ["is longer", "is more elegant and blue"]}
]"""
FIQ_TEST = '[{"candidate": "B00A3F3KKY", "captions": ["is darker", "has a collar"]}]'
FIQ_SPLIT = '["B003FGW7MK", "B008BHCT58", "B00A3F3KKY", "B0084Y8VFW"]'


@pytest.fixture
def fiq_root(tmp_path: Path) -> Path:
    root = tmp_path / "fashionIQ"
    write(root, {
        "captions/cap.dress.val.json": FIQ_VAL,
        "captions/cap.dress.test.json": FIQ_TEST,
        "image_splits/split.dress.val.json": FIQ_SPLIT,
        "images/B003FGW7MK.png": PNG,
        "images/B008BHCT58.png": PNG,
        "images/B00A3F3KKY.jpg": JPG,  # some copies use .jpg
        "images/B0084Y8VFW.png": PNG,
    })
    return root


def test_fashioniq_triplets_and_gallery(fiq_root: Path) -> None:
    fiq = FashionIQ(fiq_root)
    triplets = fiq.triplets("dress", "val")
    assert triplets[1] == FashionIQTriplet("dress", "B00A3F3KKY", ("is red.", "has shorter sleeves?"), "B0084Y8VFW")
    assert len(triplets) == 3 and all(isinstance(t.captions, tuple) for t in triplets)
    assert fiq.gallery("dress", "val") == ["B003FGW7MK", "B008BHCT58", "B00A3F3KKY", "B0084Y8VFW"]
    assert fiq.triplets("dress", "test") == [FashionIQTriplet("dress", "B00A3F3KKY", ("is darker", "has a collar"), None)]
    assert fiq.missing == {}


def test_fashioniq_jpg_fallback(fiq_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fiq = FashionIQ(fiq_root)
    assert fiq.image_path("B00A3F3KKY") == fiq_root / "images" / "B00A3F3KKY.jpg"
    assert fiq.image_path("B003FGW7MK") == fiq_root / "images" / "B003FGW7MK.png"
    Image.open(fiq.image_path("B00A3F3KKY")).verify()
    # An image stored twice: the .png wins, whichever of the two the directory listing yields first.
    listing = ["B003FGW7MK.png", "B003FGW7MK.jpg", "B00A3F3KKY.jpg", "B00A3F3KKY.PNG"]
    monkeypatch.setattr(FashionIQ, "_files_in", lambda self, directory: listing)
    both = FashionIQ(fiq_root)
    assert [both.image_path(n).name for n in ("B003FGW7MK", "B00A3F3KKY")] == ["B003FGW7MK.png", "B00A3F3KKY.PNG"]


def test_fashioniq_query_text() -> None:
    captions = ["is red.", "has shorter sleeves?"]
    assert fashioniq_query_text(captions) == "Is red and has shorter sleeves"
    assert fashioniq_query_text(captions, flip=True) == "Has shorter sleeves and is red"
    assert fashioniq_query_text([" , is NOT blue,.", "x"]) == "Is NOT blue and x"
    assert fashioniq_query_texts_both_orders(captions) == ("Is red and has shorter sleeves",
                                                          "Has shorter sleeves and is red")


def test_bad_category_and_split(fiq_root: Path) -> None:
    with pytest.raises(ValueError, match="toptee"):
        FashionIQ(fiq_root).triplets("skirt", "val")
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        FashionIQ(fiq_root).gallery("dress", "dev")
    with pytest.raises(ValueError, match="on_missing"):
        FashionIQ(fiq_root, on_missing="ignore")


def test_root_missing_or_parent_of_root(fiq_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        FashionIQ(fiq_root / "nowhere")
    assert_error(err, "nowhere", "does not exist", "captions/")
    with pytest.raises(DatasetError) as err:
        FashionIQ(fiq_root.parent)
    assert_error(err, "not a FashionIQ root", f"root='{fiq_root}'")


FIQ_VAL_CAPTIONS = "captions/cap.dress.val.json"


def _drop(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def _put(rel: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_text(text)


@pytest.mark.parametrize(("damage", "call", "fragments"), [
    (_drop(FIQ_VAL_CAPTIONS), "triplets", ["cap.dress.val.json", "file not found", "caption file"]),
    (_put(FIQ_VAL_CAPTIONS, FIQ_VAL[:200]), "triplets", ["cap.dress.val.json", "invalid JSON at line 3, column"]),
    (_put("image_splits/split.dress.val.json", '{"B003FGW7MK": 1}'), "gallery",
     ["split.dress.val.json", "top level is an object, expected a list"]),
    (_put("image_splits/split.dress.val.json", '["B003FGW7MK", 17]'), "gallery",
     ["split.dress.val.json", "record 1", "is an integer"]),
    (lambda root: edit_json(root / FIQ_VAL_CAPTIONS, lambda d: d[2].pop("target")), "triplets",
     ["cap.dress.val.json", "record 2 (candidate B0084Y8VFW)", '"target" is missing', "a string"]),
    (lambda root: edit_json(root / FIQ_VAL_CAPTIONS, lambda d: d[0]["captions"].pop()), "triplets",
     ["cap.dress.val.json", "record 0 (candidate B003FGW7MK)", "has 1 captions, expected 2"]),
], ids=["missing-file", "invalid-json", "top-level-type", "split-item-type", "missing-field", "one-caption"])
def test_fashioniq_bad_files(fiq_root: Path, damage, call: str, fragments: list[str]) -> None:
    damage(fiq_root)
    with pytest.raises(DatasetError) as err:
        getattr(FashionIQ(fiq_root), call)("dress", "val")
    assert_error(err, *fragments)


def test_fashioniq_missing_images_error(fiq_root: Path) -> None:
    (fiq_root / "images" / "B0084Y8VFW.png").unlink()
    with pytest.raises(DatasetError) as err:
        FashionIQ(fiq_root).triplets("dress", "val")
    assert_error(err, "cap.dress.val.json", "1 image(s)", "B0084Y8VFW", "2 of its 3 triplets", "on_missing='skip'")


def test_fashioniq_missing_images_skip(fiq_root: Path) -> None:
    (fiq_root / "images" / "B0084Y8VFW.png").unlink()
    fiq = FashionIQ(fiq_root, on_missing="skip")
    with pytest.warns(MissingImagesWarning, match=r"B0084Y8VFW.*dropped 2 of 3 triplets") as record:
        triplets = fiq.triplets("dress", "val")
    assert record[0].filename == __file__  # the warning points at the caller
    assert [t.candidate for t in triplets] == ["B003FGW7MK"]
    with pytest.warns(MissingImagesWarning, match="dropped 1 of 4 gallery images"):
        assert fiq.gallery("dress", "val") == ["B003FGW7MK", "B008BHCT58", "B00A3F3KKY"]
    assert fiq.missing == {"captions/cap.dress.val.json": ("B0084Y8VFW",),
                           "image_splits/split.dress.val.json": ("B0084Y8VFW",)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cached: no second warning, same result
        assert fiq.triplets("dress", "val") == triplets


# --- CIRR ------------------------------------------------------------------------------------

CIRR_VAL = """[
  {"pairid": 0, "reference": "dev-0-0-img0", "target_hard": "dev-0-1-img1",
   "target_soft": {"dev-0-1-img1": 1.0, "dev-0-2-img0": 0.5, "dev-0-3-img1": -1.0},
   "caption": "Show three dogs instead of one",
   "img_set": {"id": 0, "members": ["dev-0-0-img0", "dev-0-1-img1", "dev-0-2-img0", "dev-0-3-img1", "dev-0-4-img0", "dev-0-5-img1"],
               "reference_rank": 0, "target_rank": 1}},
  {"pairid": 4031, "reference": "dev-0-2-img0", "target_hard": "dev-0-4-img0",
   "target_soft": {"dev-0-4-img0": 1.0},
   "caption": "Make the dog sit on grass",
   "img_set": {"id": 0, "members": ["dev-0-0-img0", "dev-0-1-img1", "dev-0-2-img0", "dev-0-3-img1", "dev-0-4-img0", "dev-0-5-img1"],
               "reference_rank": 2, "target_rank": 4}}
]"""
CIRR_VAL_SPLIT = json.dumps({f"dev-0-{i}-img{i % 2}": f"./dev/dev-0-{i}-img{i % 2}.png" for i in range(6)})
CIRR_TRAIN = """[
  {"pairid": 12063, "reference": "train-10108-0-img0", "target_hard": "train-10108-0-img1",
   "target_soft": {"train-10108-0-img1": 1.0}, "caption": "Remove all but one bird",
   "img_set": {"id": 9, "members": ["train-10108-0-img0", "train-10108-1-img0", "train-10108-2-img1",
               "train-10108-3-img0", "train-10108-4-img1", "train-10108-0-img1"],
               "reference_rank": 0, "target_rank": 5}}
]"""
CIRR_TRAIN_SPLIT = json.dumps({n: f"./train/34/{n}.png" for n in json.loads(CIRR_TRAIN)[0]["img_set"]["members"]})
CIRR_TEST1 = """[
  {"pairid": 7, "reference": "test1-147-1-img1", "caption": "Has two more glasses",
   "img_set": {"id": 3, "members": ["test1-147-1-img1", "test1-1001-2-img0", "test1-1001-3-img1",
               "test1-147-0-img0", "test1-552-3-img1", "test1-80-2-img0"], "reference_rank": 0}}
]"""
CIRR_TEST1_SPLIT = json.dumps({n: f"./test1/{n}.png" for n in json.loads(CIRR_TEST1)[0]["img_set"]["members"]})


@pytest.fixture
def cirr_root(tmp_path: Path) -> Path:
    root = tmp_path / "CIRR"
    files: dict[str, str | bytes] = {
        "cirr/captions/cap.rc2.val.json": CIRR_VAL, "cirr/image_splits/split.rc2.val.json": CIRR_VAL_SPLIT,
        "cirr/captions/cap.rc2.train.json": CIRR_TRAIN, "cirr/image_splits/split.rc2.train.json": CIRR_TRAIN_SPLIT,
        "cirr/captions/cap.rc2.test1.json": CIRR_TEST1, "cirr/image_splits/split.rc2.test1.json": CIRR_TEST1_SPLIT,
    }
    for split in (CIRR_VAL_SPLIT, CIRR_TRAIN_SPLIT, CIRR_TEST1_SPLIT):
        files.update({rel: PNG for rel in json.loads(split).values()})
    write(root, files)
    return root


def test_cirr_val_triplets(cirr_root: Path) -> None:
    cirr = CIRR(cirr_root)
    first, second = cirr.triplets("val")
    assert first == CIRRTriplet(
        pairid=0, reference="dev-0-0-img0", caption="Show three dogs instead of one",
        img_set=ImgSet(0, ("dev-0-0-img0", "dev-0-1-img1", "dev-0-2-img0", "dev-0-3-img1", "dev-0-4-img0",
                           "dev-0-5-img1"), reference_rank=0, target_rank=1),
        target_hard="dev-0-1-img1", target_soft={"dev-0-1-img1": 1.0, "dev-0-2-img0": 0.5, "dev-0-3-img1": -1.0})
    assert second.pairid == 4031 and second.img_set.target_rank == 4
    assert cirr.gallery("val") == [f"dev-0-{i}-img{i % 2}" for i in range(6)]
    assert cirr.image_path("dev-0-2-img0", "val") == cirr_root / "dev" / "dev-0-2-img0.png"


def test_cirr_train_paths_through_numbered_folders(cirr_root: Path) -> None:
    cirr = CIRR(cirr_root)
    assert cirr.triplets("train")[0].target_hard == "train-10108-0-img1"
    path = cirr.image_path("train-10108-0-img0", "train")
    assert path == cirr_root / "train" / "34" / "train-10108-0-img0.png" and path.is_file()


def test_cirr_test1_has_no_targets(cirr_root: Path) -> None:
    (triplet,) = CIRR(cirr_root).triplets("test1")
    assert triplet.pairid == 7 and triplet.target_hard is None and triplet.target_soft == {}
    assert triplet.img_set.target_rank is None and triplet.img_set.reference_rank == 0


def test_cirr_bad_split_and_inner_folder_as_root(cirr_root: Path) -> None:
    with pytest.raises(ValueError, match="'train', 'val', 'test1'"):
        CIRR(cirr_root).triplets("dev")
    with pytest.raises(DatasetError) as err:
        CIRR(cirr_root / "cirr")
    assert_error(err, "not a CIRR root", f"root='{cirr_root}'")


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda d: d[1].pop("caption"), ['"caption" is missing']),
    (lambda d: d[1]["img_set"].update(id="0"), ['"img_set.id" is a string, expected an integer']),
    (lambda d: d[1]["target_soft"].update({"dev-0-5-img1": 0.7}), ["target_soft", "0.7", "1.0, 0.5 or -1.0"]),
    (lambda d: d[1]["img_set"]["members"].remove("dev-0-2-img0"), ["does not contain the reference 'dev-0-2-img0'"]),
    (lambda d: d[1].update(target_hard="dev-9-9-img9"), ["dev-9-9-img9", "split.rc2.val.json"]),
], ids=["missing-field", "nested-wrong-type", "target-soft-value", "img-set-without-reference", "name-not-in-split"])
def test_cirr_bad_record(cirr_root: Path, change, fragments: list[str]) -> None:
    edit_json(cirr_root / "cirr/captions/cap.rc2.val.json", change)
    with pytest.raises(DatasetError) as err:
        CIRR(cirr_root).triplets("val")
    assert_error(err, "cap.rc2.val.json", "record 1 (pairid 4031)", *fragments)


def test_cirr_split_path_wrong_type(cirr_root: Path) -> None:
    edit_json(cirr_root / "cirr/image_splits/split.rc2.val.json", lambda d: d.update({"dev-0-5-img1": None}))
    with pytest.raises(DatasetError) as err:
        CIRR(cirr_root).gallery("val")
    assert_error(err, "split.rc2.val.json", "record 'dev-0-5-img1'", "is null, expected a string")


def test_cirr_lost_train_folder_error(cirr_root: Path) -> None:
    shutil.rmtree(cirr_root / "train" / "34")
    with pytest.raises(DatasetError) as err:
        CIRR(cirr_root).triplets("train")
    expected = cirr_root / "train" / "34" / "train-10108-0-img0.png"
    assert_error(err, "cap.rc2.train.json", "6 image(s)", str(expected), "train/<k>/", "re-download")


def test_cirr_missing_images_skip(cirr_root: Path) -> None:
    (cirr_root / "dev" / "dev-0-1-img1.png").unlink()  # target of pair 0, member of both sets
    cirr = CIRR(cirr_root, on_missing="skip")
    with pytest.warns(MissingImagesWarning, match="dev-0-1-img1.*dropped 2 of 2 triplets"):
        assert cirr.triplets("val") == []
    with pytest.warns(MissingImagesWarning, match="dropped 1 of 6 gallery images"):
        assert "dev-0-1-img1" not in cirr.gallery("val")
    assert cirr.missing["cirr/captions/cap.rc2.val.json"] == ("dev-0-1-img1",)


def test_cirr_missing_reference_skip_drops_only_its_query(cirr_root: Path) -> None:
    edit_json(cirr_root / "cirr/captions/cap.rc2.val.json", lambda d: d[1]["img_set"].update(
        members=["dev-0-2-img0", "dev-0-4-img0"]))
    (cirr_root / "dev" / "dev-0-0-img0.png").unlink()  # only pair 0 needs it
    with pytest.warns(MissingImagesWarning, match="dropped 1 of 2 triplets"):
        assert [t.pairid for t in CIRR(cirr_root, on_missing="skip").triplets("val")] == [4031]


# --- CIRCO -----------------------------------------------------------------------------------

CIRCO_VAL = """[
  {"reference_img_id": 123, "target_img_id": 456,
   "relative_caption": "is on a beach instead", "shared_concept": "a dog",
   "gt_img_ids": [456, 789], "id": 7, "semantic_aspects": ["background"]},
  {"reference_img_id": 456, "target_img_id": 1001,
   "relative_caption": "has two of them", "shared_concept": "a cat",
   "gt_img_ids": [1001], "id": 8}
]"""
CIRCO_TEST = '[{"id": 0, "reference_img_id": 789, "relative_caption": "is black and white", "shared_concept": "a train"}]'
CIRCO_IDS = [123, 456, 789, 1001]
CIRCO_INFO = json.dumps({
    "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
    "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution"}],
    "images": [{"license": 1, "file_name": f"{i:012d}.jpg", "coco_url": f"http://images.cocodataset.org/unlabeled2017/{i:012d}.jpg",
                "height": 3, "width": 4, "date_captured": "2013-11-14 16:28:13", "id": i} for i in CIRCO_IDS],
})


@pytest.fixture
def circo_root(tmp_path: Path) -> Path:
    root = tmp_path / "CIRCO"
    write(root, {"annotations/val.json": CIRCO_VAL, "annotations/test.json": CIRCO_TEST,
                 "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json": CIRCO_INFO,
                 **{f"COCO2017_unlabeled/unlabeled2017/{i:012d}.jpg": JPG for i in CIRCO_IDS}})
    return root


def test_circo_queries_and_gallery(circo_root: Path) -> None:
    circo = CIRCO(circo_root)
    first, second = circo.queries("val")
    assert first == CIRCOQuery(7, 123, "is on a beach instead", "a dog", 456, (456, 789), ("background",))
    assert second.gt_img_ids == (1001,) and second.semantic_aspects == ()
    assert circo.queries("test") == [CIRCOQuery(0, 789, "is black and white", "a train", None, ())]
    assert circo.gallery() == CIRCO_IDS
    assert circo.image_path(123) == circo_root / "COCO2017_unlabeled" / "unlabeled2017" / "000000000123.jpg"


CIRCO_INFO_FILE = "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"


@pytest.mark.parametrize(("damage", "fragments"), [
    (lambda root: edit_json(root / "annotations/val.json", lambda d: d[0].update(gt_img_ids=["456"])),
     ["val.json", "record 0 (id 7)", '"gt_img_ids[0]" is a string', "a list of integers"]),
    (lambda root: edit_json(root / "annotations/val.json", lambda d: d[1].update(reference_img_id=5)),
     ["val.json", "record 1 (id 8)", "image id 5", "image_info_unlabeled2017.json"]),
    (_drop(CIRCO_INFO_FILE), ["image_info_unlabeled2017.json", "file not found", "COCO 2017 unlabeled image info"]),
    (lambda root: edit_json(root / CIRCO_INFO_FILE, lambda d: d["images"][2].pop("file_name")),
     ["image_info_unlabeled2017.json", "record 2 (id 789)", '"file_name" is missing']),
], ids=["gt-ids-type", "unknown-image-id", "missing-image-info", "image-info-field"])
def test_circo_bad_files(circo_root: Path, damage, fragments: list[str]) -> None:
    damage(circo_root)
    with pytest.raises(DatasetError) as err:
        CIRCO(circo_root).queries("val")
    assert_error(err, *fragments)


def test_circo_missing_images(circo_root: Path) -> None:
    (circo_root / "COCO2017_unlabeled/unlabeled2017/000000000789.jpg").unlink()
    with pytest.raises(DatasetError) as err:
        CIRCO(circo_root).queries("val")
    assert_error(err, "val.json", "000000000789.jpg", "1 of its 2 queries")
    circo = CIRCO(circo_root, on_missing="skip")
    with pytest.warns(MissingImagesWarning, match="000000000789.jpg"):
        assert [q.id for q in circo.queries("val")] == [8]
    with pytest.warns(MissingImagesWarning):
        assert circo.gallery() == [123, 456, 1001]


# --- gallery captions ------------------------------------------------------------------------

CAPTIONS = """[
  {"candidate": "dev-0-0-img0", "captions": ["a dog on grass", "a brown dog", "a dog sitting"]},
  {"candidate": "dev-0-1-img1", "captions": ["three dogs"]}
]"""


def test_gallery_captions(tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    path.write_text(CAPTIONS)
    captions = read_gallery_captions(path)
    assert captions["dev-0-0-img0"] == ("a dog on grass", "a brown dog", "a dog sitting")
    assert captions_for(["dev-0-0-img0", "dev-0-1-img1", "dev-0-2-img0"], captions, r=3) == [
        ("a dog on grass", "a brown dog", "a dog sitting"), ("three dogs", "", ""), ("", "", "")]
    assert captions_for(["dev-0-0-img0"], captions, r=2) == [("a dog on grass", "a brown dog")]
    with pytest.raises(ValueError):
        captions_for([], captions, r=0)


def test_gallery_captions_errors(tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    path.write_text(CAPTIONS.replace('"dev-0-1-img1"', '"dev-0-0-img0"'))
    with pytest.raises(DatasetError) as err:
        read_gallery_captions(path)
    assert_error(err, "captions.json", "record 1 (candidate dev-0-0-img0)", "second record")
    path.write_text('[{"candidate": "x", "captions": "a dog"}]')
    with pytest.raises(DatasetError) as err:
        read_gallery_captions(path)
    assert_error(err, "captions.json", "record 0 (candidate x)", '"captions" is a string, expected a list')
    with pytest.raises(DatasetError) as err:
        read_gallery_captions(tmp_path / "none.json")
    assert_error(err, "none.json", "file not found")
