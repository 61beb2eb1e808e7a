"""CLIP weight files: local checkpoints in the formats users bring, and the hub's files for a pretrained tag.

Weight files (a local ``pretrained`` file, or a tag's file in the hub's cache) are read by :func:`read_state_dict`,
never unpickled:

- safetensors (open_clip's hub files, cirlib's exports; checked against cirlib's checksums when it wrote them);
- PyTorch files, read with ``torch.load(weights_only=True)``, PyTorch's restricted loader that builds only
  tensors and plain containers: a state dict, ``{"state_dict": ...}`` (training checkpoints) or CLIP4Cir's
  stage-1 checkpoint ``{"epoch": ..., "CLIP": state_dict}``, with DDP's ``module.`` prefixes dropped.

Anything else (a pickled model, OpenAI's TorchScript archives, a truncated file) is one :class:`FileError`;
weights of another architecture are one line that names the architectures they fit (:func:`load_weights`).

A pretrained tag's weights come from the Hugging Face cache without touching the network (:func:`hub_weights`);
when they are not there and the hub does not answer, one line says what to download, instead of open_clip's
minute of retries.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import open_clip
import torch
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from cirlib.util.errors import FileError
from cirlib.util.tensor_io import read_tensors

# The architectures OpenAI released weights for (trained with QuickGELU).
OPENAI_ARCHITECTURES = frozenset({"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B-32", "ViT-B-16", "ViT-L-14",
                                  "ViT-L-14-336"})
WRAPPERS = ("CLIP", "state_dict")  # CLIP4Cir's stage 1; open_clip and most training loops
OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")  # in state dicts of OpenAI's TorchScript models
HUB_TIMEOUT_S = 3.0


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The CLIP state dict in a local weights file (formats: see the module docstring), or one FileError."""
    path = Path(path)
    state = read_tensors(path, "the checkpoint")[0] if _is_safetensors(path) else _torch_load(path)
    for wrapper in WRAPPERS:
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)} \
        if isinstance(state, Mapping) else {}
    if not tensors:
        keys = ", ".join(map(str, list(state)[:6])) if isinstance(state, Mapping) else type(state).__name__
        raise FileError(path, f"holds no CLIP weights (found: {keys})",
                        "pass a state dict, or a checkpoint that keeps one under 'state_dict' or 'CLIP'")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key.removeprefix("module."): value for key, value in tensors.items()}
    return {key: value for key, value in tensors.items() if key not in OPENAI_EXTRAS}


def _is_safetensors(path: Path) -> bool:
    """By content, whatever the suffix: an 8-byte header length, then the JSON header."""
    try:
        with path.open("rb") as handle:
            return handle.read(9)[8:] == b"{"
    except FileNotFoundError:
        raise FileError(path, "checkpoint file not found", "check the path given as pretrained") from None


def _torch_load(path: Path) -> object:
    """``torch.load`` with PyTorch's restricted loader; each way it refuses a file is a named error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by format
        raise _refused(path, str(error) or type(error).__name__) from None


def _refused(path: Path, message: str) -> FileError:
    """The one-line error for a file ``torch.load(weights_only=True)`` refused with ``message``."""
    if "TorchScript" in message:
        return FileError(path, "is a TorchScript archive (as OpenAI's original CLIP .pt files are), which cirlib does "
                         "not load", "use the open_clip tag 'openai' (the same weights), or save its state dict: "
                         "torch.save(torch.jit.load(file).state_dict(), 'weights.pt')")
    pickled = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if pickled:
        return FileError(path, f"holds pickled Python objects besides tensors ({pickled.group(1)}: a whole model or "
                         "trainer saved with torch.save), which cirlib never unpickles",
                         "save the weights alone: torch.save(model.state_dict(), path), or as safetensors")
    return FileError(path, f"is neither a safetensors file nor a PyTorch weights file ({message.split('. ')[0]})",
                     "pass a .safetensors or torch.save(state_dict) file; download it again if it was cut short")


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path | str,
                 architecture: str) -> None:
    """Load ``state`` into ``model`` (built as ``architecture``) exactly, or say which architectures it fits."""
    mismatch = _mismatch(model.state_dict(), state)
    if mismatch:
        fits = [name for name in matching_architectures(state) if name != architecture]
        found = f"its weights fit {', '.join(fits)}" if fits else mismatch
        hint = fits[0] if fits else "see open_clip.list_models()"
        raise FileError(path, f"does not fit the open_clip architecture {architecture} ({found})", "pass the "
                        f"architecture it was trained with ({hint}) as the model, with this file as pretrained")
    model.load_state_dict(state)


def _mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into a model with state dict ``expected`` ("" when nothing does)."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if not (missing or unexpected or reshaped):
        return ""
    return (f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape; "
            f"first: {(missing + unexpected + reshaped)[0]}")


def matching_architectures(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The open_clip architectures (``-quickgelu`` twins left out) whose shapes ``state`` has."""
    signature = state_signature(state)
    return [name for name in open_clip.list_models() if signature is not None and "quickgelu" not in name
            and config_signature(open_clip.get_model_config(name) or {}) == signature]


def state_signature(state: Mapping[str, torch.Tensor]) -> tuple | None:
    """(embed dim, vision layers, width, patch, image size, text width, text layers) of a CLIP state dict."""
    try:
        text = (state["token_embedding.weight"].shape[1], _blocks(state, "transformer.resblocks"))
        embed = state["text_projection"].shape[1]
        if "visual.layer1.0.conv1.weight" in state:  # open_clip's ModifiedResNet
            layers = tuple(_blocks(state, f"visual.layer{stage}") for stage in range(1, 5))
            grid = state["visual.attnpool.positional_embedding"].shape[0] - 1
            return (embed, layers, state["visual.layer1.0.conv1.weight"].shape[0], None, round(grid ** 0.5) * 32, *text)
        conv = state["visual.conv1.weight"]
        grid = state["visual.positional_embedding"].shape[0] - 1
        return (embed, _blocks(state, "visual.transformer.resblocks"), conv.shape[0], conv.shape[-1],
                round(grid ** 0.5) * conv.shape[-1], *text)
    except (KeyError, IndexError):
        return None


def config_signature(model_cfg: dict) -> tuple | None:
    """:func:`state_signature` of the CLIP an open_clip model config builds (None unless it is a plain CLIP)."""
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    if not plain_clip(model_cfg):
        return None
    layers = vision.get("layers", 12)
    resnet = isinstance(layers, (list, tuple))
    return (model_cfg["embed_dim"], tuple(layers) if resnet else layers, vision.get("width", 768),
            None if resnet else vision.get("patch_size", 16), vision.get("image_size", 224),
            text.get("width", 512), text.get("layers", 12))


def plain_clip(model_cfg: dict) -> bool:
    """Whether the config builds open_clip's ``CLIP`` class (OpenAI's layout), not CoCa, timm or HF towers."""
    return "embed_dim" in model_cfg and not (model_cfg.get("custom_text") or "multimodal_cfg" in model_cfg
                                             or "timm_model_name" in model_cfg.get("vision_cfg", {})
                                             or "hf_model_name" in model_cfg.get("text_cfg", {}))


def _blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks ``prefix.<i>.`` the state dict holds."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return len({match.group(1) for key in state if (match := pattern.match(key))})


def hub_weights(model: str, tag: str, tag_cfg: dict) -> Path:
    """The local file of a pretrained tag's weights: from the Hugging Face cache (no network), else downloaded
    when the hub answers; one FileError saying what to download otherwise."""
    if tag_cfg.get("file"):
        return Path(tag_cfg["file"])
    repo, files = _hub_files(tag_cfg["hf_hub"])
    for name in files:
        cached = huggingface_hub.try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            return Path(cached)
    folder = Path(huggingface_hub.constants.HF_HUB_CACHE)
    fix = (f"on a machine with internet run `hf download {repo} {files[-1]}`, copy its Hugging Face cache "
           f"(~/.cache/huggingface/hub) to {folder}, and rerun; or pass a local weights file as pretrained")
    if not _hub_reachable():
        raise FileError(folder, f"has no weights for {model} pretrained {tag!r} ({repo}) and "
                        f"{urlparse(huggingface_hub.constants.ENDPOINT).hostname} cannot be reached", fix)
    try:
        return Path(open_clip.download_pretrained(tag_cfg))
    except Exception as error:  # network, disk and hub errors alike: a user-fixable download failure
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FileError(folder, f"could not download the weights of {model} pretrained {tag!r} ({reason})",
                        fix) from None


def _hub_files(hf_hub: str) -> tuple[str, list[str]]:
    """(repository, file names to look for, the safetensors twin first) of a tag's ``hf_hub`` entry."""
    repo, name = hf_hub.rsplit("/", 1)  # "org/repo/" (the default file) or "org/repo/file"
    name = name or HF_WEIGHTS_NAME
    twin = HF_SAFE_WEIGHTS_NAME if name == HF_WEIGHTS_NAME else name[:-4] + ".safetensors"
    return repo, [twin, name] if name.endswith((".bin", ".pth")) else [name]


def _hub_reachable() -> bool:
    """False in Hugging Face's offline mode or when the hub's host does not accept a connection within 3 s."""
    if huggingface_hub.constants.is_offline_mode():
        return False
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    try:
        port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
        socket.create_connection((endpoint.hostname, port), timeout=HUB_TIMEOUT_S).close()
    except OSError:
        return False
    return True
