"""Damaged files of the kinds every layer shares (safetensors files with a checksum, model folders, the
inversion caches): a truncated file, a flipped bit, a file of another format are one named error for
inputs, and a recomputation (with a warning) for caches; never a wrong tensor or a library traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cirlib.encoders import load_encoder
from cirlib.inversion.stream import stream_features
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import CHECKSUM, read_cache, read_metadata, read_tensors, save_tensors
from tests.helpers import tiny_model_dir


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_last_byte(path: Path) -> None:
    """Flip the bits of the file's last byte: inside the tensor data, the header still parses."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "bit flip": flip_last_byte,
          "not safetensors": lambda p: p.write_text('{"features": [1, 2, 3]}'), "empty": lambda p: p.write_bytes(b"")}


@pytest.fixture
def tensors_file(tmp_path) -> Path:
    return save_tensors(tmp_path / "t.safetensors", {"a": torch.arange(64.0), "b": torch.ones(3, 4)}, {"k": "v"})


def test_a_saved_file_reads_back_verified(tensors_file):
    tensors, metadata = read_tensors(tensors_file, "a test file")
    assert torch.equal(tensors["a"], torch.arange(64.0)) and metadata["k"] == "v" and CHECKSUM in metadata


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_file_is_one_named_error(tensors_file, damage):
    DAMAGE[damage](tensors_file)
    with pytest.raises(FileError, match="a test file is truncated or damaged") as caught:
        read_tensors(tensors_file, "a test file")
    assert caught.value.path == tensors_file and "\n" not in str(caught.value)


def test_a_damaged_header_is_named_when_only_the_metadata_is_read(tensors_file):
    truncate(tensors_file, keep=0.01)
    with pytest.raises(FileError, match="truncated or damaged"):
        read_metadata(tensors_file, "a test file")


def test_a_damaged_cache_file_is_a_miss_with_a_warning_and_an_absent_one_a_silent_miss(tensors_file, recwarn):
    assert read_cache(tensors_file.with_name("absent.safetensors"), "a cache") is None and not recwarn.list
    flip_last_byte(tensors_file)
    with pytest.warns(UserWarning, match="t.safetensors: a cache is truncated or damaged .*computing it again"):
        assert read_cache(tensors_file, "a cache") is None


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_a_damaged_model_folder_names_its_weights_file(tmp_path, damage):
    folder, _ = tiny_model_dir(tmp_path / "model")
    DAMAGE[damage](folder / "open_clip_model.safetensors")
    with pytest.raises(FileError, match="open_clip_model.safetensors: the weights file is truncated or damaged"):
        load_encoder(str(folder), device="cpu")


@pytest.mark.parametrize("config", ['{"model_cfg": ', "{}", "[1, 2]"])
def test_a_damaged_model_config_is_named(tmp_path, config):
    folder, _ = tiny_model_dir(tmp_path / "model")
    (folder / "open_clip_config.json").write_text(config)
    with pytest.raises(FileError, match="open_clip_config.json: is not an open_clip model config"):
        load_encoder(str(folder), device="cpu")


def test_a_damaged_stream_cache_is_recomputed_to_the_same_features(tmp_path):
    folder, _ = tiny_model_dir(tmp_path / "model")
    encoder = load_encoder(str(folder), device="cpu")
    first = stream_features(encoder, tmp_path / "cache", seed=0, start=0, count=8, workers=1)
    (cached,) = (tmp_path / "cache").glob("stream-*.safetensors")
    flip_last_byte(cached)
    with pytest.warns(UserWarning, match="stream feature cache is truncated or damaged"):
        again = stream_features(encoder, tmp_path / "cache", seed=0, start=0, count=8, workers=1)
    assert torch.equal(again.image, first.image) and torch.equal(again.text, first.text)
    assert again.captions == first.captions
    assert read_tensors(cached, "the repaired cache")[1]["captions"] == json.dumps(first.captions)
