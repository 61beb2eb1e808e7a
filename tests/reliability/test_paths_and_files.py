"""Dataset paths that stay inside their root, and one named error for every damaged file the index layer reads.

Readers: listing files whose image paths leave the root ("../..", absolute, "a/../../b") are refused when
parsed, while an image folder that is a symlink to another disk still works. Indexes: saved files are really
damaged (cut at seeded points, seeded bit flips, tensors written with safetensors directly) and each load
must raise ``FileError`` naming the file. Submissions: the file mode follows the umask.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from cirlib.data import CIRCO, CIRR, DatasetError, FashionIQ
from cirlib.metrics import write_circo_submission, write_cirr_submission
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import CHECKSUM
from tests.test_readers import assert_error, circo_root, cirr_root, edit_json, fiq_root  # noqa: F401  (fixtures)

FAISS_MISSING = importlib.util.find_spec("faiss") is None
if not FAISS_MISSING:  # cirlib.index imports faiss (a dependency): without it the index tests skip, the rest run
    from cirlib.index import ExactIndex, FaissIndex
    from cirlib.index.base import nonfinite_rows
needs_faiss = pytest.mark.skipif(FAISS_MISSING, reason="cirlib.index needs faiss, which is not installed")

DIM = 32
ESCAPES = ["../../outside/x.png", "/etc/passwd", "a/../../b.png", "dev/../dev-0-5-img1.png"]
ESCAPE_IDS = ["dotdot", "absolute", "a-dotdot-dotdot-b", "dotdot-inside"]


def expect_escape(call, listing: str, record: str, escape: str) -> None:
    """``call()`` raises one DatasetError naming the listing file, the record, the path and the fix."""
    with pytest.raises(DatasetError) as err:
        call()
    assert_error(err, listing, f"record {record}", repr(escape), "must stay inside the dataset root", "symlink")
    assert "\n" not in str(err.value)


# --- readers: paths outside the root --------------------------------------------------------------------

@pytest.mark.parametrize("escape", ESCAPES, ids=ESCAPE_IDS)
def test_cirr_split_paths_outside_the_root_are_refused(cirr_root: Path, escape: str) -> None:  # noqa: F811
    outside = cirr_root.parent / "outside" / "x.png"  # exists, so following the path would "work" silently
    outside.parent.mkdir()
    outside.write_bytes(b"not the dataset's")
    (cirr_root.parent / "b.png").write_bytes(b"nor this")
    edit_json(cirr_root / "cirr/image_splits/split.rc2.val.json", lambda d: d.update({"dev-0-5-img1": escape}))
    reader = CIRR(cirr_root)
    expect_escape(lambda: reader.gallery("val"), "split.rc2.val.json", "'dev-0-5-img1'", escape)
    expect_escape(lambda: CIRR(cirr_root).triplets("val"), "split.rc2.val.json", "'dev-0-5-img1'", escape)
    expect_escape(lambda: CIRR(cirr_root).image_path("dev-0-0-img0", "val"), "split.rc2.val.json",
                  "'dev-0-5-img1'", escape)  # even an image the bad entry is not about: the listing is refused


@pytest.mark.parametrize("escape", ["../x", "a/../../b", "/tmp/x", ".."], ids=["dotdot", "a-dotdot", "absolute",
                                                                              "bare-dotdot"])
@pytest.mark.parametrize("listing", ["captions", "image_splits"])
def test_fashioniq_names_outside_the_root_are_refused(fiq_root: Path, escape: str, listing: str) -> None:  # noqa: F811
    if listing == "captions":
        edit_json(fiq_root / "captions/cap.dress.val.json", lambda d: d[1].update(target=escape))
        call, file = lambda: FashionIQ(fiq_root).triplets("dress", "val"), "cap.dress.val.json"
        record = "1 (candidate B00A3F3KKY)"
    else:
        edit_json(fiq_root / "image_splits/split.dress.val.json", lambda d: d.__setitem__(2, escape))
        call, file, record = lambda: FashionIQ(fiq_root).gallery("dress", "val"), "split.dress.val.json", "2"
    expect_escape(call, file, record, escape)


@pytest.mark.parametrize("escape", ["../../../etc/passwd", "/etc/passwd", "a/../../b.jpg"],
                         ids=["dotdot", "absolute", "a-dotdot-dotdot-b"])
def test_circo_file_names_outside_the_root_are_refused(circo_root: Path, escape: str) -> None:  # noqa: F811
    info = circo_root / "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"
    edit_json(info, lambda d: d["images"][1].update(file_name=escape))
    expect_escape(lambda: CIRCO(circo_root).gallery(), "image_info_unlabeled2017.json", "1 (id 456)", escape)
    expect_escape(lambda: CIRCO(circo_root).queries("val"), "image_info_unlabeled2017.json", "1 (id 456)", escape)


@pytest.mark.parametrize(("fixture", "folder"), [("cirr_root", "dev"), ("fiq_root", "images"),
                                                 ("circo_root", "COCO2017_unlabeled/unlabeled2017")])
def test_a_symlinked_image_folder_is_still_accepted(request: pytest.FixtureRequest, tmp_path: Path, fixture: str,
                                                    folder: str) -> None:
    """Datasets on another disk: the image folder inside the root is a symlink to elsewhere."""
    root = request.getfixturevalue(fixture)
    elsewhere = tmp_path / "other-disk" / "images"
    elsewhere.parent.mkdir()
    shutil.move(root / folder, elsewhere)
    (root / folder).symlink_to(elsewhere, target_is_directory=True)
    if fixture == "cirr_root":
        reader = CIRR(root)
        assert len(reader.triplets("val")) == 2 and len(reader.gallery("val")) == 6
        path = reader.image_path("dev-0-2-img0", "val")
    elif fixture == "fiq_root":
        reader = FashionIQ(root)
        assert len(reader.triplets("dress", "val")) == 3 and len(reader.gallery("dress", "val")) == 4
        path = reader.image_path("B003FGW7MK")
    else:
        reader = CIRCO(root)
        assert len(reader.queries("val")) == 2 and reader.gallery() == [123, 456, 789, 1001]
        path = reader.image_path(123)
    assert path.is_relative_to(root) and path.resolve().is_relative_to(elsewhere) and path.read_bytes()
    assert reader.missing == {}


# --- ExactIndex: damaged files ----------------------------------------------------------------------------

def unit_rows(n: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.fixture
def saved_index(tmp_path: Path) -> Path:
    index = ExactIndex(DIM, model="m@1")
    index.add(unit_rows(20, 0), ids=np.arange(20) * 3)
    return index.save(tmp_path / "gallery.safetensors")


def expect_file_error(load: Callable[[], object], named: Path, *fragments: str) -> None:
    """``load()`` raises one FileError line naming the file ``named``, the fragments and the fix."""
    with pytest.raises(FileError) as err:
        load()
    message = str(err.value)
    assert err.value.path == named and message.startswith(f"{named}: ") and "Fix: " in message, message
    assert "\n" not in message and all(fragment in message for fragment in fragments), message


def expect_index_error(path: Path, *fragments: str) -> None:
    """Loading the ExactIndex at ``path`` raises one FileError line naming it."""
    expect_file_error(lambda: ExactIndex.load(path, model=None), path, *fragments)


def data_start(path: Path) -> int:
    """Offset of the tensor bytes in a safetensors file (after the 8-byte length and the JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@needs_faiss
def test_save_load_round_trip_keeps_every_bit_and_stores_a_checksum(saved_index: Path) -> None:
    loaded = ExactIndex.load(saved_index, model="m@1", dim=DIM)
    assert torch.equal(loaded.features, unit_rows(20, 0)) and loaded.ids.tolist() == list(range(0, 60, 3))
    header = json.loads(saved_index.read_bytes()[8:data_start(saved_index)])
    assert len(header["__metadata__"][CHECKSUM]) == 64  # the sha256 of the tensors that tensor_io writes


@needs_faiss
def test_truncated_files_are_refused_by_name(saved_index: Path) -> None:
    data = saved_index.read_bytes()
    cuts = [0, 7, data_start(saved_index) - 1, len(data) - 1] + random.Random(1).sample(range(1, len(data)), 8)
    for cut in cuts:
        saved_index.write_bytes(data[:cut])
        expect_index_error(saved_index, "the saved index is truncated or damaged")


@needs_faiss
def test_bit_flips_in_the_tensor_bytes_fail_the_checksum(saved_index: Path) -> None:
    data, start, rng = bytearray(saved_index.read_bytes()), data_start(saved_index), random.Random(2)
    for _ in range(30):
        position, bit = rng.randrange(start, len(data)), 1 << rng.randrange(8)
        data[position] ^= bit
        saved_index.write_bytes(data)
        expect_index_error(saved_index, "do not match the checksum")
        data[position] ^= bit
    saved_index.write_bytes(data)
    assert len(ExactIndex.load(saved_index, model=None)) == 20  # every flip undone: the file loads again


@needs_faiss
def test_bit_flips_in_the_header_are_refused_or_leave_the_tensors_intact(saved_index: Path) -> None:
    """One seeded bit of every byte of the length prefix and JSON header: safetensors' parse, the metadata checks
    or the checksum refuse it. The checksum covers the tensors, not the metadata, so a flip in its own key (the
    file then reads as one saved without it) or in the model's name loads: the tensors are then bit-identical."""
    data, rng = bytearray(saved_index.read_bytes()), random.Random(3)
    original, refused = ExactIndex.load(saved_index, model=None), 0
    for position in range(data_start(saved_index)):
        bit = 1 << rng.randrange(8)
        data[position] ^= bit
        saved_index.write_bytes(data)
        try:
            loaded = ExactIndex.load(saved_index, model=None)
        except FileError:
            expect_index_error(saved_index)  # named, one line, with the fix
            refused += 1
        else:
            assert torch.equal(loaded.features, original.features) and np.array_equal(loaded.ids, original.ids)
            assert loaded.metadata() | {"model": "m@1"} == original.metadata(), position
        data[position] ^= bit
    assert refused >= 0.9 * data_start(saved_index), refused


def write_index_file(path: Path, features: torch.Tensor, ids: torch.Tensor | None, **metadata: str) -> Path:
    """An index file written with safetensors directly (no checksum, as older cirlib wrote them)."""
    fields = {"format": "cirlib-index-1", "backend": "exact", "dim": str(DIM), "metric": "ip", "model": "m",
              "count": str(len(features)), "dtype": "float32"} | metadata
    save_file({"features": features} | ({} if ids is None else {"ids": ids}), str(path), metadata=fields)
    return path


def with_row(value: float) -> torch.Tensor:
    features = unit_rows(4, 5)
    features[2, 7] = value
    return features


@needs_faiss
@pytest.mark.parametrize(("features", "ids", "metadata", "fragments"), [
    (with_row(float("nan")), torch.arange(4), {}, ["stored features rows [2] (1 in all) hold NaN or infinite"]),
    (with_row(float("inf")), torch.arange(4), {}, ["stored features rows [2]"]),
    (unit_rows(4, 5), torch.tensor([0, 1, 1, 2]), {}, ["stored ids must be unique", "e.g. [1]"]),
    (unit_rows(4, 5), torch.tensor([0, -1, 2, 3]), {}, ["stored ids must be non-negative"]),
    (unit_rows(4, 5), torch.arange(3), {}, ["holds ids as int64 of shape (3,)", "int64 of shape (4,)"]),
    (unit_rows(4, 5), torch.arange(4, dtype=torch.int32), {}, ["holds ids as int32"]),
    (unit_rows(4, 5).double(), torch.arange(4), {}, ["holds features as float64 of shape (4, 32)", "float32"]),
    (unit_rows(4, 5)[:, :16].contiguous(), torch.arange(4), {}, ["features as float32 of shape (4, 16)"]),
    (unit_rows(4, 5), None, {}, ["holds ids as nothing"]),
    (unit_rows(4, 5), torch.arange(4), {"count": "four"}, ["count='four', of the wrong type"]),
    (unit_rows(4, 5), torch.arange(4), {"dtype": "int8"}, ["dtype='int8', not one of float32"]),
    (unit_rows(4, 5), torch.arange(4), {"metric": "l2"}, ["metric='l2'"]),
], ids=["nan-row", "inf-row", "duplicate-ids", "negative-id", "ids-short", "ids-int32", "float64", "wrong-dim",
        "no-ids", "count-not-int", "unknown-dtype", "unknown-metric"])
def test_bad_contents_are_refused_with_the_add_paths_checks(tmp_path: Path, features: torch.Tensor,
                                                            ids: torch.Tensor | None, metadata: dict[str, str],
                                                            fragments: list[str]) -> None:
    path = write_index_file(tmp_path / "direct.safetensors", features, ids, **metadata)
    expect_index_error(path, *fragments)


@needs_faiss
def test_missing_metadata_fields_are_named(tmp_path: Path) -> None:
    path = tmp_path / "direct.safetensors"
    save_file({"features": unit_rows(2, 6), "ids": torch.arange(2)}, str(path),
              metadata={"format": "cirlib-index-1", "backend": "exact", "dim": str(DIM)})
    expect_index_error(path, "its index metadata lacks metric, model, count, dtype")


@needs_faiss
def test_a_file_without_checksum_still_loads(tmp_path: Path) -> None:
    path = write_index_file(tmp_path / "old.safetensors", unit_rows(4, 5), torch.arange(4) + 10)
    loaded = ExactIndex.load(path, model="m", dim=DIM)
    assert loaded.ids.tolist() == [10, 11, 12, 13] and torch.equal(loaded.features, unit_rows(4, 5))


@needs_faiss
def test_the_fast_finiteness_check_finds_exactly_the_bad_rows() -> None:
    """Rows are screened by their sum: a finite row whose sum overflows is not reported, +inf and -inf are."""
    features = unit_rows(64, 8)
    features[3, 0], features[9, :], features[20, 1:3] = float("nan"), 3e38, torch.tensor([float("inf"), -float("inf")])
    assert torch.isinf(features[9].sum()) and nonfinite_rows(features) == (
        "rows [3, 20] (2 in all) hold NaN or infinite values")
    assert nonfinite_rows(features[[0, 9]]) == "" and nonfinite_rows(features[:0]) == ""
    assert nonfinite_rows(features.half()[[0, 3, 9]]) == "rows [1, 2] (2 in all) hold NaN or infinite values"


# --- FaissIndex: damaged sidecar and index file -----------------------------------------------------------

@pytest.fixture
def saved_faiss(tmp_path: Path) -> Path:
    index = FaissIndex(DIM, "Flat", model="m@1")
    index.add(unit_rows(30, 7))
    return index.save(tmp_path / "gallery.faiss")


def expect_faiss_error(path: Path, named: Path, *fragments: str) -> None:
    """Loading the FaissIndex at ``path`` raises one FileError line naming ``named`` (it or its sidecar)."""
    expect_file_error(lambda: FaissIndex.load(path, model=None), named, *fragments)


@needs_faiss
def test_faiss_truncated_sidecar_is_refused_by_name(saved_faiss: Path) -> None:
    sidecar = saved_faiss.with_name(saved_faiss.name + ".json")
    text = sidecar.read_bytes()
    for cut in [0, 1, len(text) // 2, len(text) - 3] + random.Random(4).sample(range(2, len(text) - 3), 5):
        sidecar.write_bytes(text[:cut])
        expect_faiss_error(saved_faiss, sidecar, "is not a readable JSON file")


@needs_faiss
@pytest.mark.parametrize(("change", "fragments"), [
    (lambda d: [d.pop("spec"), d.pop("model")], ["lacks model, spec"]),
    (lambda d: d.update(dim="32"), ["dim='32', of the wrong type"]),
    (lambda d: d.update(backend="exact"), ["is not a saved cirlib faiss index"]),
], ids=["missing-fields", "wrong-type", "wrong-backend"])
def test_faiss_sidecar_fields_are_checked(saved_faiss: Path, change, fragments: list[str]) -> None:
    sidecar = saved_faiss.with_name(saved_faiss.name + ".json")
    edit_json(sidecar, change)
    expect_faiss_error(saved_faiss, sidecar, *fragments)


@needs_faiss
def test_faiss_sidecar_that_is_not_an_object_is_refused(saved_faiss: Path) -> None:
    sidecar = saved_faiss.with_name(saved_faiss.name + ".json")
    sidecar.write_text("[1, 2]")
    expect_faiss_error(saved_faiss, sidecar, "holds a JSON list")


@needs_faiss
def test_faiss_truncated_index_file_is_refused_by_name(saved_faiss: Path) -> None:
    data = saved_faiss.read_bytes()
    for cut in [0, 10, len(data) - 1] + random.Random(5).sample(range(1, len(data) - 1), 5):
        saved_faiss.write_bytes(data[:cut])
        expect_faiss_error(saved_faiss, saved_faiss, "truncated or damaged")


# --- submission files honour the umask --------------------------------------------------------------------

@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o027, 0o640)], indirect=["umask"],
                         ids=["umask-002", "umask-027"])
def test_submission_files_get_the_mode_of_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    names = [[f"img-{query}-{rank}" for rank in range(50)] for query in range(2)]
    paths = write_cirr_submission(tmp_path, [1, 2], names, [row[:3] for row in names])
    paths += (write_circo_submission(tmp_path / "circo.json", [1, 2], [list(range(50)), list(range(50, 100))]),)
    assert [stat.S_IMODE(path.stat().st_mode) for path in paths] == [mode] * 3
    assert json.loads(paths[0].read_text())["2"] == names[1] and sorted(p.name for p in tmp_path.iterdir()) == [
        "circo.json", "cirr_recall.json", "cirr_recall_subset.json"]  # no temporary file left behind
