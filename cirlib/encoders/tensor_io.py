"""safetensors files written atomically (caches, checkpoints, exported models)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic import atomic_path


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """safetensors' ``save_file`` into a temporary file, renamed into place when complete."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)
