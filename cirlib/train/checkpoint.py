"""Training checkpoints in safetensors (no pickle): model, optimizer state and a JSON record.

The optimizer's tensors are stored flat (``optimizer.state.<param>.<name>``) and its param
groups as JSON in the file's metadata, so a checkpoint can be read without executing anything.
Files are written atomically: an interrupted save leaves the previous checkpoint intact.

Every read is checked against the checksums ``save_tensors`` stores (:mod:`cirlib.util.tensor_io`: one over
the tensors, one over the metadata, i.e. the record and the param groups), so a truncated file, a flipped bit
or a file that cirlib did not write is a one-line :class:`~cirlib.util.errors.FileError` naming the file, never
wrong weights or a traceback. :func:`read_record` reads the header alone: it checks the metadata, not the
tensors. Checkpoints of older cirlib versions have no checksums and are read unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from cirlib.util.errors import FileError
from cirlib.util.tensor_io import read_metadata, read_tensors, save_tensors

MODEL_PREFIX = "model."
STATE_PREFIX = "optimizer.state."
WHAT = "the checkpoint"
DAMAGED_FIX = "restore the file from a copy, or train the run again (--overwrite)"


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


def _parse_record(path: Path, metadata: dict[str, str] | None, required: Sequence[str]) -> dict:
    """The JSON record in ``metadata``, with the ``required`` keys; a FileError if it is not cirlib's."""
    fix = "pass a checkpoint written by cirlib (cirlib train / pretrain)"
    if not metadata or "record" not in metadata:
        raise FileError(path, "has no training record in its metadata: it was not written by cirlib", fix)
    try:
        record = json.loads(metadata["record"])
    except ValueError:
        raise FileError(path, "has a training record that is not JSON: it is damaged or was not written by cirlib",
                        fix) from None
    missing = [key for key in required if not isinstance(record, dict) or key not in record]
    if missing:
        raise FileError(path, f"has a training record without {', '.join(missing)}: it was not written by this "
                        "cirlib trainer", fix)
    return record


def _with_checkpoint_fix(error: FileError) -> FileError:
    """A damaged checkpoint's error with the fix for a checkpoint (a missing one keeps its own)."""
    return FileError(error.path, error.problem, DAMAGED_FIX) if error.path.exists() else error


def read_record(path: Path | str, required: Sequence[str] = ()) -> dict:
    """The JSON record of a checkpoint (with the ``required`` keys), without loading its tensors."""
    try:
        metadata = read_metadata(path, WHAT)
    except FileError as error:
        raise _with_checkpoint_fix(error) from None
    return _parse_record(Path(path), metadata, required)


def read_checkpoint(path: Path | str, required: Sequence[str] = ()) -> tuple[dict[str, torch.Tensor], dict[str, str],
                                                                              dict]:
    """(tensors, metadata, record) of a checkpoint, every byte checked against the checksums."""
    try:
        tensors, metadata = read_tensors(path, WHAT)
    except FileError as error:
        raise _with_checkpoint_fix(error) from None
    return tensors, metadata, _parse_record(Path(path), metadata, required)


def load_checkpoint(path: Path | str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore ``model`` (and ``optimizer``) in place from a checked checkpoint; return the record."""
    path = Path(path)
    tensors, metadata, record = read_checkpoint(path)
    model.load_state_dict({k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)})
    if optimizer is not None:
        if "param_groups" not in metadata:
            raise FileError(path, "holds no optimizer state, so training cannot continue from it",
                            "resume from the run's last checkpoint")
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(STATE_PREFIX):
                index, name = key[len(STATE_PREFIX):].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    return record
