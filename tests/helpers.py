"""Small builders shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import torch

from cirlib.encoders.clip_model import build_clip, export_model_dir

# A CLIP small enough to build, train and encode with in well under a second on a CPU.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_model_dir(folder: Path, seed: int = 0, kind: str = "targetpad"):
    """A random TINY_CLIP saved as a model folder; returns (folder, model)."""
    torch.manual_seed(seed)
    model = build_clip(TINY_CLIP)
    return export_model_dir(folder, model, TINY_CLIP, {"kind": kind}, dtype=torch.float32), model
