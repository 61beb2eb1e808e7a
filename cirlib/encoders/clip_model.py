"""Build open_clip CLIP models from a plain config dict, and the matching tokenizer.

Constructing ``open_clip.model.CLIP`` directly (rather than registering a named config in
open_clip's global registry) keeps model creation free of global state.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from open_clip.model import CLIP
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import QuickGELU

from cirlib.util.atomic import write_json
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import read_tensors, save_tensors


def build_clip(model_cfg: dict) -> CLIP:
    """A randomly initialised CLIP from an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``)."""
    return CLIP(**model_cfg)


def uses_quick_gelu(model: torch.nn.Module) -> bool:
    """Whether the built model's transformer blocks use QuickGELU (OpenAI's activation) rather than GELU."""
    return any(isinstance(module, QuickGELU) for module in model.modules())


def build_tokenizer(model_cfg: dict) -> SimpleTokenizer:
    return SimpleTokenizer(context_length=model_cfg["text_cfg"].get("context_length", 77))


def load_model_dir(folder: Path | str, quick_gelu: bool | None = None) -> tuple[CLIP, dict]:
    """A model folder in the hub's layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``
    (weights verified against their checksum when cirlib wrote them; a damaged file is a named error).
    ``quick_gelu``: None keeps the config's ``model_cfg["quick_gelu"]`` (GELU when absent); True/False forces."""
    folder = Path(folder)
    config_path = folder / "open_clip_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        model_cfg = config["model_cfg"]
        model = build_clip(model_cfg if quick_gelu is None else {**model_cfg, "quick_gelu": quick_gelu})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise FileError(config_path, f"is not an open_clip model config ({type(error).__name__}: {error})",
                        "restore the model folder (it needs a JSON object with model_cfg)") from None
    state, _ = read_tensors(folder / "open_clip_model.safetensors", "the weights file")
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as error:
        raise FileError(folder / "open_clip_model.safetensors", "does not fit the architecture in "
                        f"open_clip_config.json ({str(error).splitlines()[0]})",
                        "keep the config and the weights of one model together") from None
    return model.eval(), config


def export_model_dir(folder: Path | str, model: CLIP, model_cfg: dict, preprocess_cfg: dict,
                     dtype: torch.dtype = torch.float16) -> Path:
    """Write a model folder that :func:`load_model_dir` and open_clip's ``local-dir:`` both read."""
    folder = Path(folder)
    write_json(folder / "open_clip_config.json", {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    save_tensors(folder / "open_clip_model.safetensors", {k: v.to(dtype) for k, v in model.state_dict().items()})
    return folder
