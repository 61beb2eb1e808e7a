"""Training checkpoints in safetensors (no pickle): model, optimizer state and a JSON record.

The optimizer's tensors are stored flat (``optimizer.state.<param>.<name>``) and its param
groups as JSON in the file's metadata, so a checkpoint can be read without executing anything.
Files are written atomically: an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open

from ..encoders.tensor_io import save_tensors

MODEL_PREFIX = "model."
STATE_PREFIX = "optimizer.state."


def save_checkpoint(path: Path | str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    record: dict) -> Path:
    """Save model weights, optimizer state and ``record`` (JSON-serialisable: step, config, log)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    metadata = {"record": json.dumps(record)}
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"{STATE_PREFIX}{index}.{name}"] = torch.as_tensor(value)
        metadata["param_groups"] = json.dumps(state["param_groups"])
    save_tensors(path, tensors, metadata)
    return path


def read_record(path: Path | str) -> dict:
    """The JSON record of a checkpoint, without loading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["record"])


def load_checkpoint(path: Path | str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore ``model`` (and ``optimizer``) in place; return the record."""
    tensors = load_file(str(path))
    model.load_state_dict({k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    if optimizer is not None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(STATE_PREFIX):
                index, name = key[len(STATE_PREFIX):].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    return json.loads(metadata["record"])
