"""One door to every CLIP: ``load_encoder`` for the bundled model, a model folder, a local
checkpoint file, or an open_clip hub name with a pretrained tag.

    load_encoder()                                        # the bundled synthclip
    load_encoder("path/to/model_dir")                     # open_clip_config.json + open_clip_model.safetensors
    load_encoder("RN50x4", pretrained="ckpt.safetensors") # an open_clip architecture + a local file
    load_encoder("ViT-B-32", pretrained="laion2b_s34b_b79k")  # the hub (needs internet; never in tests)

The encoder carries its preprocessing, so callers cannot mismatch it, the precision its features are
computed in (float32 by default: the same features on every device), and an identity string with the
hash of its weights at load time; the cache key (``feature_key``) holds the name, the weights hashed again,
the preprocessing and the precision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import open_clip
import torch

from .clip_model import build_tokenizer, load_model_dir
from .device import resolve_device, resolve_precision
from .tensor_io import tensors_digest
from .transforms import CLIP_MEAN, CLIP_STD, PreprocessConfig

BUNDLED = {"synthclip": "models/synthclip"}


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

    @property
    def identity(self) -> str:
        """Model name plus the hash of its weights taken at load time (``weights_sha256``). It is fixed: weights
        changed in memory afterwards (training, ``load_state_dict``) keep the old identity, so records that
        store it (runs, indexes) cannot tell them apart. ``feature_key`` hashes the weights again, so the
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
        weights hashed now (not at load time, so weights changed in memory never hit the old entries; 0.02 s
        for synthclip, 0.4 s for a ViT-B-32 on a CPU), its preprocessing and its precision."""
        return {"encoder": self.name, "weights": weights_hash(self.model),
                "preprocess": self.preprocess_config.to_json(), "precision": self.precision}


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes."""
    return tensors_digest(model.state_dict())


def bundled_model_dir(name: str) -> Path:
    return Path(str(resources.files("cirlib").joinpath(BUNDLED[name])))


def _preprocess_config(kind: str | None, image_size: int, stored: dict) -> PreprocessConfig:
    return PreprocessConfig(kind=kind or stored.get("kind", "targetpad"), image_size=image_size,
                            mean=tuple(stored.get("mean", CLIP_MEAN)), std=tuple(stored.get("std", CLIP_STD)))


def load_encoder(model: str = "synthclip", pretrained: str | None = None, preprocess: str | None = None,
                 device: str | torch.device = "auto", precision: str = "float32") -> Encoder:
    """Load a CLIP (see the module docstring); ``preprocess`` overrides the model's own default
    (``targetpad`` unless the model folder says otherwise; synthclip was trained with ``squarepad``).
    ``precision``: "float32" (default; identical features on CPU and GPU), "bfloat16" or "float16"
    (autocast: faster on GPUs with tensor cores, features rounded to 8 or 11 significant bits)."""
    resolved = resolve_device(device)
    if resolve_precision(precision, resolved) != precision:
        raise ValueError(f"precision must be float32, bfloat16 or float16 for features, got {precision!r}")
    folder = bundled_model_dir(model) if model in BUNDLED else Path(model)
    if pretrained is None and (folder / "open_clip_config.json").is_file():
        clip, config = load_model_dir(folder)
        tokenizer = build_tokenizer(config["model_cfg"])
        stored = config.get("preprocess_cfg", {})
        image_size = config["model_cfg"]["vision_cfg"]["image_size"]
    elif pretrained is None and model not in open_clip.list_models() and not model.startswith(("hf-hub:", "local-dir:")):
        raise FileNotFoundError(
            f"{model!r} is neither a bundled model ({', '.join(BUNDLED)}), nor a folder holding "
            "open_clip_config.json, nor an open_clip architecture name; see open_clip.list_models()")
    else:
        if pretrained is not None and Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors") \
                and not Path(pretrained).is_file():
            raise FileNotFoundError(f"checkpoint file {pretrained} does not exist")
        clip, _, _ = open_clip.create_model_and_transforms(model, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(model)
        stored = dict(open_clip.get_pretrained_cfg(model, pretrained) or {}) if pretrained else {}
        image_size = clip.visual.image_size
        image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    clip = clip.to(resolved).eval()
    name = model if pretrained is None else f"{model}:{Path(pretrained).name}"
    return Encoder(model=clip, tokenizer=tokenizer, preprocess_config=_preprocess_config(preprocess, image_size, stored),
                   name=name, device=resolved, weights_sha256=weights_hash(clip), precision=precision)


def describe(encoder: Encoder) -> str:
    """One line for logs: identity, preprocessing, device, parameter count."""
    params = sum(p.numel() for p in encoder.model.parameters())
    return (f"{encoder.identity}  preprocess={json.dumps(encoder.preprocess_config.to_json())}  "
            f"device={encoder.device}  precision={encoder.precision}  params={params / 1e6:.1f}M")
