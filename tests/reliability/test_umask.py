"""Every file cirlib writes gets the mode ``open()`` would give it (0666 less the umask), not mkstemp's 0600,
so benchmarks, runs and caches in a group-shared folder stay readable to the group."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from cirlib.encoders import load_encoder
from cirlib.features import FeatureCache
from cirlib.train.checkpoint import save_checkpoint
from cirlib.util.atomic import current_umask, save_figure, write_json, write_text
from cirlib.util.locks import LOCK_NAME, folder_lock
from cirlib.util.tensor_io import save_tensors
from tests.helpers import tiny_model_dir


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


@pytest.mark.parametrize("mask", [0o002, 0o027, 0o077])
def test_the_umask_is_read_without_changing_it(mask):
    with umask(mask):
        assert current_umask() == mask
        assert current_umask() == mask


@pytest.mark.parametrize("mask", [0o002, 0o027])
def test_files_written_by_each_writer_honour_the_umask(tmp_path, mask):
    folder, model = tiny_model_dir(tmp_path / "model")
    encoder = load_encoder(str(folder), device="cpu")
    out = tmp_path / "written"
    with umask(mask):
        write_json(out / "a" / "b.json", {"x": 1})
        write_text(out / "note.txt", "text")
        save_tensors(out / "t.safetensors", {"x": torch.zeros(2)})
        figure = Figure()
        figure.subplots().plot([0, 1])
        save_figure(out / "figure.png", figure)
        save_checkpoint(out / "run" / "last.safetensors", torch.nn.Linear(2, 2), None, {"epoch": 1})
        FeatureCache(out / "cache").text_features(encoder, ["a red dress", "a blue shirt"], "probe")
        with folder_lock(out / "locked", "a test", wait=False):
            pass
    found = modes(out)
    files = {name: mode for name, mode in found.items() if (out / name).is_file()}
    folders = {name: mode for name, mode in found.items() if (out / name).is_dir()}
    assert {"a/b.json", "note.txt", "t.safetensors", "figure.png", "run/last.safetensors",
            f"locked/{LOCK_NAME}"} <= set(files)
    assert any(name.startswith("cache/") for name in files)
    assert files == dict.fromkeys(files, 0o666 & ~mask)
    assert folders == dict.fromkeys(folders, 0o777 & ~mask)


def test_every_file_of_a_built_benchmark_honours_the_umask(small_benchmark):
    folder, _ = small_benchmark  # built by this test process, under its umask
    expected = 0o666 & ~current_umask()
    wrong = {name: oct(mode) for name, mode in modes(folder).items() if (folder / name).is_file() and mode != expected}
    assert not wrong
