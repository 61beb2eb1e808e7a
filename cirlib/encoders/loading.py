"""One door to every CLIP: ``load_encoder`` for the bundled model, a model folder, a local
checkpoint file, or an open_clip hub name with a pretrained tag.

    load_encoder()                                        # the bundled synthclip
    load_encoder("path/to/model_dir")                     # open_clip_config.json + open_clip_model.safetensors
    load_encoder("synthclip", pretrained="runs/stage1/best.safetensors")  # a model folder, fine-tuned weights
    load_encoder("RN50x4", pretrained="ckpt.safetensors") # an open_clip architecture + a local file
    load_encoder("RN50x4", pretrained="stage1.pt", quick_gelu=True)  # CLIP4Cir's stage-1 checkpoint
    load_encoder("ViT-B-32", pretrained="laion2b_s34b_b79k")  # the hub (the Hugging Face cache, else internet)

The activation is the one the weights were trained with: OpenAI's CLIPs use QuickGELU, which open_clip >= 3
builds only when asked (``quick_gelu``; the pretrained tag's config says it for hub weights). Local files
(checkpoints.py) are read without unpickling; every way loading can fail is one line naming the file or value
and the fix. A cirlib training checkpoint (a ``kind: stage1`` run's ``best.safetensors`` or ``last.safetensors``)
is a weights file too: its model's tensors are read, its optimizer state left aside.

The encoder carries its preprocessing, so callers cannot mismatch it, the precision its features are
computed in (float32 by default: the same features on every device), its activation, and an identity string
with the hash of its weights at load time; the cache key (``feature_key``) holds the name, the weights hashed
again, the preprocessing, the precision and the activation.
"""

from __future__ import annotations

import difflib
import json
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import open_clip
import torch

from cirlib.encoders.checkpoints import OPENAI_ARCHITECTURES, hub_weights, load_weights, plain_clip, read_state_dict
from cirlib.encoders.clip_model import build_clip, build_tokenizer, load_model_dir, uses_quick_gelu
from cirlib.encoders.transforms import CLIP_MEAN, CLIP_STD, PreprocessConfig
from cirlib.util.device import resolve_device, resolve_precision
from cirlib.util.errors import ConfigError, FileError
from cirlib.util.tensor_io import tensors_digest

BUNDLED = {"synthclip": "models/synthclip"}
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
TRAINING_PREFIXES = ("model.", "optimizer.state.")  # cirlib.train.checkpoint's tensor names: model, optimizer state


@dataclass
class Encoder:
    """A CLIP model in eval mode on its device, with tokenizer, preprocessing and identity."""

    model: torch.nn.Module
    tokenizer: object
    preprocess_config: PreprocessConfig
    name: str
    device: torch.device
    weights_sha256: str
    precision: str = "float32"   # features in exact float32, or "bfloat16"/"float16" autocast (faster on GPUs)
    quick_gelu: bool = False     # the built model's activation: QuickGELU (OpenAI's weights) or GELU
    _hashed: tuple = field(default=(), init=False, repr=False, compare=False)  # (weights_stamp, sha256) last hashed

    def __post_init__(self) -> None:
        self._hashed = (weights_stamp(self.model), self.weights_sha256)

    @property
    def identity(self) -> str:
        """Model name plus the hash of its weights taken at load time (``weights_sha256``). It is fixed: weights
        changed in memory afterwards (training, ``load_state_dict``) keep the old identity, so records that
        store it (runs, indexes) cannot tell them apart. ``feature_key`` uses the weights as they are now, so the
        feature caches never serve stale features. To refresh the identity, make a new encoder:
        ``dataclasses.replace(encoder, weights_sha256=weights_hash(encoder.model))``."""
        return f"{self.name}@{self.weights_sha256[:16]}"

    @property
    def embed_dim(self) -> int:
        """Width of the image and text features (the rows of every feature tensor)."""
        projection = self.model.text_projection  # a matrix, or a Linear in some open_clip configurations
        return projection.out_features if isinstance(projection, torch.nn.Linear) else projection.shape[1]

    @property
    def feature_key(self) -> dict:
        """Everything about the encoder that determines its features, part of every cache key: its name, its
        weights as they are now (:meth:`weights_now`: weights changed in memory never hit the old entries), its
        preprocessing, its precision and its activation (the same weights give other features with QuickGELU
        than with GELU)."""
        return {"encoder": self.name, "weights": self.weights_now(),
                "preprocess": self.preprocess_config.to_json(), "precision": self.precision,
                "quick_gelu": self.quick_gelu}


    def weights_now(self) -> str:
        """The sha256 of the weights as they are now, hashed again only when a parameter or buffer changed since
        the last hash (:func:`weights_stamp`; a hash takes 0.02 s for synthclip, 0.4 s for a ViT-B-32 on a CPU)."""
        stamp = weights_stamp(self.model)
        if stamp != self._hashed[0]:
            self._hashed = (stamp, weights_hash(self.model))
        return self._hashed[1]


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes."""
    return tensors_digest(model.state_dict())


def weights_stamp(model: torch.nn.Module) -> tuple:
    """What changes whenever a weight does: each state-dict tensor's name, storage address, dtype, shape and
    version counter (torch bumps it on every in-place change: optimiser steps, ``load_state_dict``, ``mul_``;
    a tensor replaced, even through ``.data``, has new storage)."""
    return tuple((name, t.data_ptr(), t.dtype, tuple(t.shape), t._version)
                 for name, t in model.state_dict(keep_vars=True).items())


def bundled_model_dir(name: str) -> Path:
    return Path(str(resources.files("cirlib").joinpath(BUNDLED[name])))


def _preprocess_config(kind: str | None, image_size: int, stored: dict) -> PreprocessConfig:
    return PreprocessConfig(kind=kind or stored.get("kind", "targetpad"), image_size=image_size,
                            mean=tuple(stored.get("mean", CLIP_MEAN)), std=tuple(stored.get("std", CLIP_STD)))


class _Built(NamedTuple):
    model: torch.nn.Module
    tokenizer: object
    stored: dict  # preprocessing the model's source names (mean, std, kind)


def load_encoder(model: str = "synthclip", pretrained: str | None = None, preprocess: str | None = None,
                 device: str | torch.device = "auto", precision: str = "float32",
                 quick_gelu: bool | None = None) -> Encoder:
    """Load a CLIP (see the module docstring); ``preprocess`` overrides the model's own default
    (``targetpad`` unless the model folder says otherwise; synthclip was trained with ``squarepad``).
    ``precision``: "float32" (default; identical features on CPU and GPU), "bfloat16" or "float16"
    (autocast: faster on GPUs with tensor cores, features rounded to 8 or 11 significant bits).
    ``quick_gelu``: None builds the activation the weights were trained with as far as their source says it (a
    pretrained tag's open_clip config: QuickGELU for OpenAI's; a model folder's config; a ``-quickgelu`` name);
    True/False forces QuickGELU/GELU. A local file gives no such record: stating it is the caller's job (a
    warning says so for files that look like OpenAI weights)."""
    resolved = resolve_device(device)
    if resolve_precision(precision, resolved) != precision:
        raise ValueError(f"precision must be float32, bfloat16 or float16 for features, got {precision!r}")
    folder = _model_folder(model, pretrained)
    built = _from_folder(folder, quick_gelu, pretrained) if folder else _from_open_clip(model, pretrained, quick_gelu)
    clip = built.model.to(resolved).eval()
    name = model if pretrained is None else f"{model}:{Path(pretrained).name}"
    return Encoder(model=clip, tokenizer=built.tokenizer, name=name, device=resolved,
                   preprocess_config=_preprocess_config(preprocess, _image_size(clip), built.stored),
                   weights_sha256=weights_hash(clip), precision=precision, quick_gelu=uses_quick_gelu(clip))


def _model_folder(model: str, pretrained: str | None) -> Path | None:
    """The model folder ``model`` names (bundled, or a folder holding open_clip_config.json); None for an open_clip
    name; one-line errors for anything else (an existing path that is no model folder, an unknown name, a model
    folder with a ``pretrained`` that is no file)."""
    folder = bundled_model_dir(model) if model in BUNDLED else Path(model)
    if (folder / "open_clip_config.json").is_file():
        if pretrained is not None and not Path(pretrained).is_file():
            raise ConfigError("encoder", "pretrained", pretrained, f"none, or an existing weights file fine-tuned from "
                              f"it (a stage-1 run's best.safetensors): the model folder {model} holds its own weights "
                              "(drop pretrained, or pass an open_clip architecture as the model)")
        return folder
    if folder.exists():
        raise FileError(folder, "is not a model folder (no open_clip_config.json in it)",
                        "pass a folder holding open_clip_config.json and open_clip_model.safetensors, or an open_clip "
                        "architecture as the model with a weights file as pretrained")
    if model not in open_clip.list_models() and not model.startswith(("hf-hub:", "local-dir:")):
        close = difflib.get_close_matches(model, list(BUNDLED) + open_clip.list_models(), n=3)
        raise ConfigError("encoder", "model", model, "a bundled model (" + ", ".join(BUNDLED) + "), a folder "
                          "holding open_clip_config.json, or an open_clip architecture (open_clip.list_models()"
                          + (f"; closest: {', '.join(close)})" if close else ")"))
    return None


def _from_folder(folder: Path, quick_gelu: bool | None, pretrained: str | None) -> _Built:
    """A model folder's CLIP, tokenizer and preprocessing; with ``pretrained`` (a local file), that file's weights
    instead of the folder's (weights fine-tuned from it: the folder's own are loaded, then replaced)."""
    clip, config = load_model_dir(folder, quick_gelu)
    if pretrained is not None:
        load_weights(clip, _local_state(Path(pretrained)), pretrained, str(folder))
    return _Built(clip, build_tokenizer(config["model_cfg"]), config.get("preprocess_cfg", {}))


def _from_open_clip(model: str, pretrained: str | None, quick_gelu: bool | None) -> _Built:
    """An open_clip architecture with random weights, a pretrained tag's weights, or a local weights file."""
    tag_cfg = dict(open_clip.get_pretrained_cfg(model, pretrained) or {}) if pretrained else {}
    arch_cfg = open_clip.get_model_config(model) or {}
    chosen = quick_gelu if quick_gelu is not None else bool(tag_cfg.get("quick_gelu") or arch_cfg.get("quick_gelu"))
    if pretrained is None:
        clip = _create(model, chosen)
    elif tag_cfg:
        clip = _from_file(model, arch_cfg, hub_weights(model, pretrained, tag_cfg), chosen, warn=False)
    else:
        clip = _from_file(model, arch_cfg, _weights_file(model, pretrained), chosen, warn=quick_gelu is None)
    return _Built(clip, open_clip.get_tokenizer(model), tag_cfg)


def _create(model: str, quick_gelu: bool, pretrained: str | None = None) -> torch.nn.Module:
    """open_clip's model; ``force_quick_gelu`` only switches QuickGELU on, the config override also switches it off
    (for a ``-quickgelu`` name)."""
    return open_clip.create_model(model, pretrained=pretrained, force_quick_gelu=quick_gelu, quick_gelu=quick_gelu)


def _weights_file(model: str, pretrained: str) -> Path:
    """``pretrained`` as a local weights file, or a one-line error (a folder, a missing file, an unknown tag)."""
    path = Path(pretrained)
    if path.is_file():
        return path
    if path.is_dir():
        as_model = (path / "open_clip_config.json").is_file()
        raise FileError(path, "is a folder; pretrained takes an open_clip tag or a weights file",
                        "pass this model folder as the model and drop pretrained" if as_model else
                        "pass the weights file inside it (.safetensors, .pt, .bin) as pretrained")
    if path.suffix in WEIGHT_SUFFIXES or len(path.parts) > 1:
        raise FileError(path, "checkpoint file not found", "check the path given as pretrained")
    tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
    raise ConfigError("encoder", "pretrained", pretrained, f"a pretrained tag of {model} ({tags}) or an existing "
                      "weights file")


def _from_file(model: str, model_cfg: dict, path: Path, quick_gelu: bool, warn: bool) -> torch.nn.Module:
    """``model`` (open_clip config ``model_cfg``) with the weights of a local file: cirlib reads it (no unpickling;
    CLIP4Cir's stage-1 format too) for plain CLIP architectures, open_clip's own loader for the others (CoCa, timm
    or HF towers); ``warn``: the caller did not say which activation."""
    if plain_clip(model_cfg):
        state = _local_state(path)
        clip = build_clip({**model_cfg, "quick_gelu": quick_gelu})
        load_weights(clip, state, path, model)
    else:
        clip = _create(model, quick_gelu, str(path))
    if warn and not quick_gelu and ("openai" in path.name.lower() or model in OPENAI_ARCHITECTURES):
        warnings.warn(f"{path}: built {model} with GELU; OpenAI's weights and CLIP4Cir checkpoints fine-tuned from "
                      "them use QuickGELU: set quick_gelu true if this file holds them (false silences this)",
                      stacklevel=4)
    return clip


def _local_state(path: Path) -> dict[str, torch.Tensor]:
    """The CLIP state dict in a local weights file (:func:`read_state_dict`); of a cirlib training checkpoint, the
    model's tensors without their prefix (its optimizer state left aside)."""
    state = read_state_dict(path)
    model_prefix = TRAINING_PREFIXES[0]
    if not any(key.startswith(model_prefix) for key in state) or not all(key.startswith(TRAINING_PREFIXES)
                                                                        for key in state):
        return state
    return {key.removeprefix(model_prefix): value for key, value in state.items() if key.startswith(model_prefix)}


def _image_size(clip: torch.nn.Module) -> int:
    size = clip.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def config_encoder(config: Any, device: str | torch.device | None = None) -> Encoder:
    """The encoder a job's config names: its ``model``, ``pretrained``, ``preprocess`` and ``quick_gelu`` fields,
    on ``device`` (default: the config's own ``device``)."""
    return load_encoder(config.model, pretrained=config.pretrained, preprocess=config.preprocess,
                        device=config.device if device is None else device, quick_gelu=config.quick_gelu)


def describe(encoder: Encoder) -> str:
    """One line for logs: identity, preprocessing, device, precision, activation, parameter count."""
    params = sum(p.numel() for p in encoder.model.parameters())
    return (f"{encoder.identity}  preprocess={json.dumps(encoder.preprocess_config.to_json())}  "
            f"device={encoder.device}  precision={encoder.precision}  quick_gelu={encoder.quick_gelu}  "
            f"params={params / 1e6:.1f}M")
