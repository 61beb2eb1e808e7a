"""Encoders built right and every way loading a CLIP can fail as one line: QuickGELU chosen from the pretrained
tag's config (or stated for a local file), recorded in the cache key; CLIP4Cir's stage-1 checkpoint; checkpoints
for another architecture, folders as pretrained, unreadable files, a missing GPU and a tag offline.

Everything runs offline: open_clip architectures with random weights saved by the tests, a Hugging Face cache the
tests write, and the hub in offline mode (or at an address that refuses connections)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import load_file, save_file

from cirlib.cli import main
from cirlib.encoders import describe, load_encoder
from cirlib.encoders.clip_model import export_model_dir
from cirlib.features import FeatureCache
from cirlib.util.errors import FileError
from tests.helpers import TINY_CLIP, tiny_model_dir

BLOCKS = {"RN50": 12, "ViT-B-32": 24}  # transformer blocks (text; ViT: text + vision), each with one activation
HUB_REPO, HUB_COMMIT = "timm/resnet50_clip.openai", "0" * 40  # where open_clip's RN50 'openai' tag points


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """Random RN50 and ViT-B-32 weights saved as safetensors files (seeded; 1 GB, removed after the module)."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for seed, name in enumerate(BLOCKS):
        torch.manual_seed(seed)
        files[name] = folder / f"{name.lower()}.safetensors"
        save_file(open_clip.create_model(name).state_dict(), str(files[name]))
    yield files
    shutil.rmtree(folder)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache in offline mode: nothing can reach the network."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf"


def activations(model: torch.nn.Module) -> dict[str, int]:
    """How many QuickGELU and GELU modules the model holds."""
    return {"QuickGELU": sum(isinstance(m, QuickGELU) for m in model.modules()),
            "GELU": sum(isinstance(m, torch.nn.GELU) for m in model.modules())}


def expected(name: str, quick_gelu: bool) -> dict[str, int]:
    return {"QuickGELU": BLOCKS[name] if quick_gelu else 0, "GELU": 0 if quick_gelu else BLOCKS[name]}


def cli_error(capsys, *args: str) -> str:
    """The one line `cirlib` prints for a failing command (exit status 2, no traceback)."""
    status = main(list(args))
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def zeroshot_error(capsys, tmp_path: Path, model: str, pretrained: str | None = None, device: str = "cpu") -> str:
    args = ["zeroshot", "--model", model, "--device", device, "--out", str(tmp_path / "none")]
    return cli_error(capsys, *args, *(["--pretrained", pretrained] if pretrained else []))


# --- 1. QuickGELU ---------------------------------------------------------------------------------------------------

def test_the_openai_tag_builds_quickgelu_from_the_local_hub_cache_without_the_network(hub, weights):
    snapshot = hub / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / HUB_COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").symlink_to(weights["RN50"])  # as the hub's cache links its blobs
    (hub / f"models--{HUB_REPO.replace('/', '--')}" / "refs").mkdir()
    (hub / f"models--{HUB_REPO.replace('/', '--')}" / "refs" / "main").write_text(HUB_COMMIT)
    encoder = load_encoder("RN50", pretrained="openai", device="cpu")
    assert encoder.quick_gelu and activations(encoder.model) == expected("RN50", True)
    assert torch.equal(encoder.model.text_projection, load_file(str(weights["RN50"]))["text_projection"])
    assert "quick_gelu=True" in describe(encoder)
    forced = load_encoder("RN50", pretrained="openai", device="cpu", quick_gelu=False)
    assert not forced.quick_gelu and activations(forced.model) == expected("RN50", False)


@pytest.mark.parametrize("name, quick_gelu", [("RN50", None), ("ViT-B-32", None), ("ViT-B-32", True)])
def test_a_local_checkpoint_is_built_with_the_activation_stated_and_a_warning_when_unstated(weights, name,
                                                                                           quick_gelu, recwarn):
    encoder = load_encoder(name, pretrained=str(weights[name]), device="cpu", quick_gelu=quick_gelu)
    assert encoder.quick_gelu is bool(quick_gelu) and activations(encoder.model) == expected(name, bool(quick_gelu))
    assert f"quick_gelu={bool(quick_gelu)}" in describe(encoder)
    warned = [str(w.message) for w in recwarn if "QuickGELU" in str(w.message)]
    assert len(warned) == (0 if quick_gelu else 1)  # OpenAI released both: GELU from a file is worth a warning
    assert all(str(weights[name]) in message and "\n" not in message for message in warned)


def test_a_model_folder_config_says_quick_gelu_and_the_cache_keeps_the_two_activations_apart(tmp_path):
    folder = export_model_dir(tmp_path / "qg", tiny_model_dir(tmp_path / "m")[1], {**TINY_CLIP, "quick_gelu": True},
                              {"kind": "targetpad"}, dtype=torch.float32)
    quick, plain = load_encoder(str(folder), device="cpu"), load_encoder(str(folder), device="cpu", quick_gelu=False)
    assert quick.quick_gelu and not plain.quick_gelu and activations(quick.model)["QuickGELU"] == 2
    assert {k: v for k, v in quick.feature_key.items() if k != "quick_gelu"} == \
        {k: v for k, v in plain.feature_key.items() if k != "quick_gelu"}
    assert quick.feature_key["quick_gelu"] is True and plain.feature_key["quick_gelu"] is False
    cache, texts = FeatureCache(tmp_path / "cache"), ["a red circle", "two blue squares"]
    first, second = cache.text_features(quick, texts, "toy"), cache.text_features(plain, texts, "toy")
    assert not torch.allclose(first, second)  # a shared entry would have served the first tensor again
    assert torch.equal(cache.text_features(quick, texts, "toy"), first)


# --- the CLIP4Cir stage-1 checkpoint and files cirlib cannot read ---------------------------------------------------

def test_a_clip4cir_stage1_checkpoint_loads_to_the_weights_it_holds(tmp_path, weights):
    state = load_file(str(weights["RN50"]))
    torch.save({"epoch": 7, "CLIP": state}, tmp_path / "tuned_RN50_fullft.pt")
    encoder = load_encoder("RN50", pretrained=str(tmp_path / "tuned_RN50_fullft.pt"), device="cpu", quick_gelu=True)
    loaded = encoder.model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert encoder.quick_gelu and encoder.name == "RN50:tuned_RN50_fullft.pt"


def unreadable(folder: Path, kind: str) -> Path:
    """A weights file cirlib refuses: a pickled module, a TorchScript archive, a cut-off or foreign file."""
    path = folder / f"{kind}.pt"
    if kind == "pickled-model":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "torchscript":
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    elif kind == "truncated":
        torch.save({"CLIP": {"w": torch.ones(1000)}}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif kind == "no-weights":
        torch.save({"epoch": 3, "best": 0.5}, path)
    else:
        path.write_bytes(bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize("kind, says", [("pickled-model", "pickled Python objects"), ("torchscript", "TorchScript"),
                                        ("truncated", "neither"), ("no-weights", "no CLIP weights"),
                                        ("random-bytes", "neither")])
def test_a_weights_file_cirlib_cannot_read_is_one_line_naming_it(tmp_path, capsys, kind, says):
    path = unreadable(tmp_path, kind)
    line = zeroshot_error(capsys, tmp_path, "RN50", str(path))
    assert line.startswith(f"error: {path}: ") and says in line and "Fix: " in line
    with pytest.raises(FileError):
        load_encoder("RN50", pretrained=str(path), device="cpu")


# --- 3 and 5: one line for each way the model options can be wrong ------------------------------------------------

def test_a_checkpoint_for_another_architecture_names_the_file_the_architecture_and_the_fix(tmp_path, capsys, weights):
    line = zeroshot_error(capsys, tmp_path, "ViT-B-32", str(weights["RN50"]))
    assert f"{weights['RN50']}: does not fit the open_clip architecture ViT-B-32 (its weights fit RN50)" in line
    assert "Fix: pass the architecture it was trained with (RN50)" in line


def test_folders_and_unknown_names_as_model_or_pretrained_are_one_line(tmp_path, capsys):
    model_folder, plain_folder = tiny_model_dir(tmp_path / "clip")[0], tmp_path / "weights"
    plain_folder.mkdir()
    assert "pass this model folder as the model" in zeroshot_error(capsys, tmp_path, "RN50", str(model_folder))
    assert "pass the weights file inside it" in zeroshot_error(capsys, tmp_path, "RN50", str(plain_folder))
    assert "holds its own weights" in zeroshot_error(capsys, tmp_path, str(model_folder), "openai")
    assert "no open_clip_config.json" in zeroshot_error(capsys, tmp_path, str(plain_folder))
    assert "closest: ViT-B-32" in zeroshot_error(capsys, tmp_path, "ViT-B/32")
    assert "a pretrained tag of RN50 (openai, " in zeroshot_error(capsys, tmp_path, "RN50", "laion")
    assert load_encoder(str(model_folder), device="cpu").name == str(model_folder)  # the folder alone works


@pytest.mark.parametrize("device, gpus, says", [("cuda", 0, "(it has: cpu)"), ("cuda:2", 2, "cpu, cuda:0, cuda:1"),
                                                ("gpu", 0, "(it has: cpu)")])
def test_a_device_this_machine_lacks_is_one_line_listing_those_it_has(tmp_path, capsys, monkeypatch, device, gpus,
                                                                     says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    line = zeroshot_error(capsys, tmp_path, "synthclip", device=device)
    assert f"device {device!r} is not available" in line and says in line and "Fix: pass --device auto" in line


@pytest.mark.parametrize("offline", [True, False])
def test_a_tag_whose_weights_are_not_cached_fails_fast_in_one_line_when_the_hub_is_unreachable(
        tmp_path, capsys, monkeypatch, hub, offline):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # refuses connections
    started = time.perf_counter()
    line = zeroshot_error(capsys, tmp_path, "RN50", "openai")
    assert time.perf_counter() - started < 10
    assert f"{hub}: has no weights for RN50 pretrained 'openai' ({HUB_REPO})" in line and "cannot be reached" in line
    assert f"hf download {HUB_REPO} open_clip_pytorch_model.bin" in line and "pass a local weights file" in line
