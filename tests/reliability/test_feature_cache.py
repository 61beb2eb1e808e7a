"""The feature cache under damage: resumes with another chunk size, damaged cache files, empty inputs,
content-keyed images (and the file-hash memo), weights changed in memory, damaged images, and a SIGKILLed
extraction."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

import cirlib.encoders.loading as loading_module
import cirlib.features.cache as cache_module
from cirlib.encoders import load_encoder
from cirlib.features import FeatureCache, encode_images, encode_texts
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import read_metadata, save_tensors
from tests.helpers import tiny_model_dir
from tests.test_encoders import counting

TEXTS = [f"is {colour} with {n} stripes" for colour, n in zip(["red", "blue", "green", "black"] * 3, range(10))]
DIM = 32  # TINY_CLIP's embedding width


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")[0]


@pytest.fixture(scope="module")
def encoder(model_dir):
    return load_encoder(str(model_dir), device="cpu")


def write_images(folder: Path, count: int, seed: int = 0, suffix: str = "png") -> list[Path]:
    """``count`` small images of seeded random colours (PNG without compression: the size depends only on
    the image's width and height)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:02d}.{suffix}" for i in range(count)]
    for i, path in enumerate(paths):
        colour = tuple(rng.randrange(256) for _ in range(3))
        Image.new("RGB", (20 + 3 * i, 24), colour).save(path, **({"compress_level": 0} if suffix == "png" else {}))
    return paths


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return write_images(tmp_path / "img", 7)


def image_features(cache: FeatureCache, encoder, paths: list[Path]) -> torch.Tensor:
    return cache.image_features(encoder, [p.stem for p in paths], paths, "toy", num_workers=0, progress=False)


def entry_file(folder: Path) -> Path:
    (path,) = folder.glob("toy-*.safetensors")
    return path


def parts(folder: Path) -> list[str]:
    """The row ranges of the part files in ``folder``, as "lo-hi.safetensors"."""
    return sorted(p.name.rsplit(".part", 1)[1] for p in folder.glob(".*.part*.safetensors"))


def interrupt_texts(monkeypatch, cache: FeatureCache, encoder, texts: list[str]) -> None:
    """A text extraction that dies while encoding its second chunk (the first is saved)."""
    real, calls = cache_module.encode_texts, []

    def dies_on_second_chunk(*args, **options):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **options)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(cache_module, "encode_texts", dies_on_second_chunk)
        cache.text_features(encoder, texts, "q", progress=False)


# (a) resuming with another chunk size


def test_a_resume_with_another_chunk_size_gives_every_row_once_and_removes_the_old_parts(tmp_path, encoder,
                                                                                          monkeypatch):
    expected = FeatureCache(tmp_path / "reference", chunk_size=3).text_features(encoder, TEXTS, "q", progress=False)
    interrupt_texts(monkeypatch, FeatureCache(tmp_path / "cache", chunk_size=4), encoder, TEXTS)
    assert parts(tmp_path / "cache") == ["0-4.safetensors"]
    resumed = FeatureCache(tmp_path / "cache", chunk_size=3).text_features(encoder, TEXTS, "q", progress=False)
    assert resumed.shape == (len(TEXTS), DIM) and torch.equal(resumed, expected)
    assert parts(tmp_path / "cache") == [], "parts of any chunking are removed once the entry is complete"


def test_a_stored_part_of_the_wrong_shape_is_recomputed_with_a_warning(tmp_path, encoder, monkeypatch):
    expected = FeatureCache(tmp_path / "reference", chunk_size=4).text_features(encoder, TEXTS, "q", progress=False)
    cache = FeatureCache(tmp_path / "cache", chunk_size=4)
    interrupt_texts(monkeypatch, cache, encoder, TEXTS)
    (part,) = (tmp_path / "cache").glob(".*.part0-4.safetensors")
    metadata = read_metadata(part, "a part")
    save_tensors(part, {"features": torch.zeros(5, DIM)}, metadata)  # a valid checksum, but five rows for four
    with pytest.warns(UserWarning, match=rf"{part.name}: holds a \(5, {DIM}\) tensor"):
        assert torch.equal(cache.text_features(encoder, TEXTS, "q", progress=False), expected)


# (b) damaged cache files


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def flip_data_bytes(path: Path) -> None:
    """Invert 16 bytes in the tensor data (after the 8-byte length and the JSON header)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little") + 40
    data[start:start + 16] = bytes(b ^ 0xFF for b in data[start:start + 16])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip_data_bytes])
def test_b_a_damaged_entry_is_recomputed_with_one_warning_and_overwritten(tmp_path, encoder, images, monkeypatch,
                                                                           damage):
    seen, cache = counting(monkeypatch), FeatureCache(tmp_path / "cache")
    first = image_features(cache, encoder, images)
    path = entry_file(tmp_path / "cache")
    damage(path)
    with pytest.warns(UserWarning) as warned:
        again = image_features(cache, encoder, images)
    assert len(warned) == 1 and str(path) in str(warned[0].message) and "\n" not in str(warned[0].message)
    assert torch.equal(again, first) and sum(seen) == 14
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overwritten file is whole again: read without a warning
        assert torch.equal(image_features(cache, encoder, images), first) and sum(seen) == 14


@pytest.mark.parametrize("damage", [truncate, flip_data_bytes])
def test_b_a_damaged_part_is_recomputed_on_resume(tmp_path, encoder, monkeypatch, damage):
    expected = FeatureCache(tmp_path / "reference", chunk_size=4).text_features(encoder, TEXTS, "q", progress=False)
    cache = FeatureCache(tmp_path / "cache", chunk_size=4)
    interrupt_texts(monkeypatch, cache, encoder, TEXTS)
    (part,) = (tmp_path / "cache").glob(".*.part0-4.safetensors")
    damage(part)
    with pytest.warns(UserWarning, match=part.name):
        assert torch.equal(cache.text_features(encoder, TEXTS, "q", progress=False), expected)


# (c) empty inputs


def test_c_empty_inputs_give_and_cache_zero_rows_of_the_embedding_width(tmp_path, encoder, monkeypatch):
    assert encoder.embed_dim == DIM
    assert encode_texts(encoder, [], progress=False).shape == (0, DIM)
    assert encode_images(encoder, [], num_workers=0, progress=False).shape == (0, DIM)
    cache = FeatureCache(tmp_path / "cache")
    for _ in range(2):  # computed, then read back from the file
        assert cache.text_features(encoder, [], "empty").shape == (0, DIM)
        assert cache.image_features(encoder, [], [], "empty").shape == (0, DIM)
    assert len(list((tmp_path / "cache").glob("empty-*.safetensors"))) == 2


# (d) images keyed by content, with a memo of file hashes


def test_d_a_same_size_same_mtime_content_change_is_a_miss(tmp_path, encoder, images, monkeypatch):
    seen, cache = counting(monkeypatch), FeatureCache(tmp_path / "cache")
    first = image_features(cache, encoder, images)
    before = os.stat(images[3])
    width, height = Image.open(images[3]).size
    Image.new("RGB", (width, height), (1, 2, 3)).save(images[3], compress_level=0)  # rewritten in place
    os.utime(images[3], ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(images[3])
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    changed = image_features(cache, encoder, images)
    assert sum(seen) == 14 and not torch.equal(changed[3], first[3])
    assert torch.equal(changed, encode_images(encoder, images, num_workers=0, progress=False))


def test_d_the_hash_memo_spares_rereading_unchanged_files_and_is_rebuilt_when_damaged(tmp_path, encoder, images,
                                                                                       monkeypatch):
    real, read = cache_module.file_sha256, []
    monkeypatch.setattr(cache_module, "file_sha256", lambda path: read.append(Path(path).name) or real(path))
    first = image_features(FeatureCache(tmp_path / "cache"), encoder, images)
    assert len(read) == len(images)
    assert torch.equal(image_features(FeatureCache(tmp_path / "cache"), encoder, images), first)
    assert len(read) == len(images), "unchanged files are not read again"
    images[2].write_bytes(images[2].read_bytes())  # the same bytes written again: a new ctime
    image_features(FeatureCache(tmp_path / "cache"), encoder, images)
    assert read[len(images):] == [images[2].name]
    (memo,) = (tmp_path / "cache").glob(".*sha256*")
    memo.write_bytes(memo.read_bytes()[:50])  # damaged: rebuilt without a word
    assert torch.equal(image_features(FeatureCache(tmp_path / "cache"), encoder, images), first)
    assert len(read) == 2 * len(images) + 1
    image_features(FeatureCache(tmp_path / "cache"), encoder, images)
    assert len(read) == 2 * len(images) + 1, "the rebuilt memo is used"


def test_d_a_copied_dataset_hits_the_same_entry(tmp_path, encoder, images, monkeypatch):
    seen, cache = counting(monkeypatch), FeatureCache(tmp_path / "cache")
    first = image_features(cache, encoder, images)
    copy = shutil.copytree(images[0].parent, tmp_path / "copy")
    assert torch.equal(image_features(cache, encoder, [copy / p.name for p in images]), first)
    assert sum(seen) == len(images) and len(list((tmp_path / "cache").glob("toy-*"))) == 1


# (e) weights changed in memory


def test_e_weights_changed_in_memory_miss_the_cache_though_the_identity_stays(tmp_path, model_dir, images,
                                                                            monkeypatch):
    seen, cache = counting(monkeypatch), FeatureCache(tmp_path / "cache")
    encoder = load_encoder(str(model_dir), device="cpu")
    identity, first = encoder.identity, image_features(cache, encoder, images)
    with torch.no_grad():
        encoder.model.visual.proj.mul_(2.0)
    changed = image_features(cache, encoder, images)
    assert sum(seen) == 14 and torch.allclose(changed, 2 * first, atol=1e-5)
    assert encoder.identity == identity, "identity is the hash at load time (documented)"


def test_e_the_weights_are_hashed_again_only_after_they_change(model_dir, monkeypatch):
    encoder = load_encoder(str(model_dir), device="cpu")
    hashed = []
    real = loading_module.weights_hash
    monkeypatch.setattr(loading_module, "weights_hash", lambda model: hashed.append(1) or real(model))
    keys = [encoder.feature_key["weights"] for _ in range(3)]
    assert keys == [encoder.weights_sha256] * 3 and hashed == [], "unchanged weights keep the load-time hash"
    projection = encoder.model.visual.proj
    with torch.no_grad():
        projection.mul_(2.0)                       # in place: the version counter moves
    doubled = encoder.feature_key["weights"]
    projection.data = projection.data * 3.0        # replaced: new storage
    tripled = encoder.feature_key["weights"]
    encoder.model.load_state_dict({k: v.clone() for k, v in encoder.model.state_dict().items()})
    reloaded = encoder.feature_key["weights"]
    assert len({keys[0], doubled, tripled}) == 3 and reloaded == tripled and len(hashed) == 3
    assert tripled == loading_module.weights_hash(encoder.model)


# (f) damaged images


@pytest.mark.parametrize("suffix", ["png", "jpg"])
@pytest.mark.parametrize("workers", [0, 1])
def test_f_a_damaged_image_raises_a_file_error_naming_it_through_the_workers(tmp_path, encoder, suffix, workers):
    paths = write_images(tmp_path / "img", 5, suffix=suffix)
    paths[3].write_bytes(paths[3].read_bytes()[:60])
    message = rf"{re.escape(str(paths[3]))}: image cannot be decoded \(.+\)\. Fix: re-download or re-render it"
    with pytest.raises(FileError, match=message):
        encode_images(encoder, paths, batch_size=2, num_workers=workers, progress=False)


def test_f_a_missing_image_raises_a_file_error_naming_it(tmp_path, encoder, images):
    images[1].unlink()
    with pytest.raises(FileError, match=rf"{re.escape(str(images[1]))}: image file does not exist"):
        image_features(FeatureCache(tmp_path / "cache"), encoder, images)


# a SIGKILLed extraction

CHILD = """
import sys, time
from pathlib import Path
import cirlib.features.cache as cache_module
from cirlib import FeatureCache, load_encoder

model, folder, *paths = sys.argv[1:]
real = cache_module.encode_images
def slow(encoder, chunk, **options):  # 0.1 s at least for each chunk left, from the first line printed
    print("encoding", flush=True)
    time.sleep(0.1)
    return real(encoder, chunk, num_workers=0, progress=False)
cache_module.encode_images = slow
encoder = load_encoder(model, device="cpu")
FeatureCache(folder, chunk_size=2).image_features(encoder, [Path(p).stem for p in paths], paths, "toy")
"""


def run_and_kill(model_dir: Path, folder: Path, paths: list[Path], delay: float) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model_dir), str(folder), *map(str, paths)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "encoding"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def test_a_sigkilled_extraction_resumes_to_the_uninterrupted_features(tmp_path, model_dir, encoder, monkeypatch):
    paths = write_images(tmp_path / "img", 16, seed=1)
    expected = image_features(FeatureCache(tmp_path / "reference", chunk_size=2), encoder, paths)
    rng = random.Random(0)
    for _ in range(2):  # a moment within what is left of the child's extraction
        left = len(paths) // 2 - len(parts(tmp_path / "cache"))
        run_and_kill(model_dir, tmp_path / "cache", paths, rng.uniform(0.0, 0.08 * left))
        assert not list((tmp_path / "cache").glob("toy-*")), "killed before the entry was complete"
    saved = len(parts(tmp_path / "cache"))
    seen = counting(monkeypatch)
    resumed = image_features(FeatureCache(tmp_path / "cache", chunk_size=2), encoder, paths)
    assert torch.equal(resumed, expected)
    assert sum(seen) == len(paths) - 2 * saved, "the saved chunks are not encoded again"
    assert parts(tmp_path / "cache") == []
