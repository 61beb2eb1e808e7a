"""safetensors files written atomically with checksums, and read back verified (caches, checkpoints, models).

Every file :func:`save_tensors` writes carries two sha256 checksums in its metadata: one over its tensors'
names, dtypes, shapes and bytes (``cirlib.sha256``), one over the rest of its metadata
(``cirlib.metadata.sha256``). :func:`read_tensors` checks both, :func:`read_metadata` (the header alone)
the second: a truncated file, a flipped bit or a file that is not safetensors at all becomes one
:class:`~cirlib.util.errors.FileError` naming the file, never a wrong tensor or a library traceback. Files written
without checksums (by other tools, or an older cirlib) are read unverified; a file with one checksum but not
the other (a flipped bit in a key's name) is damaged.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from cirlib.util.atomic import atomic_path
from cirlib.util.config import json_sha256
from cirlib.util.errors import FileError

CHECKSUM = "cirlib.sha256"
METADATA_CHECKSUM = "cirlib.metadata.sha256"
CHECKSUMS = (CHECKSUM, METADATA_CHECKSUM)


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order (a state dict's too)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(tensors.items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
    return digest.hexdigest()


def metadata_digest(metadata: Mapping[str, str]) -> str:
    """sha256 of the metadata entries other than the checksums, in key order."""
    entries = {k: v for k, v in metadata.items() if k not in CHECKSUMS}
    return json_sha256(entries)


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """safetensors' ``save_file`` into a temporary file, renamed into place when complete, with the checksums."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {k: v for k, v in (metadata or {}).items() if k not in CHECKSUMS}  # a copied file's old ones go
    checksums = {CHECKSUM: tensors_digest(tensors), METADATA_CHECKSUM: metadata_digest(metadata)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**metadata, **checksums})
    return Path(path)


def _open(path: Path | str, what: str, tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors or {}, metadata) of the file, its metadata checked; errors named."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            loaded = {key: handle.get_tensor(key) for key in handle.keys()} if tensors else {}
    except FileNotFoundError:
        raise FileError(path, f"{what} not found", "check the path") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _damaged(path, what, error) from None
    stored = [metadata.get(key) for key in CHECKSUMS]
    if stored != [None, None] and (None in stored or stored[1] != metadata_digest(metadata)):
        raise _damaged(path, what, "its metadata does not match the checksum written with it")
    return loaded, metadata


def read_metadata(path: Path | str, what: str) -> dict[str, str]:
    """The metadata of the safetensors file at ``path`` (``what`` names it in errors), checked, without its tensors."""
    return _open(path, what, tensors=False)[1]


def read_tensors(path: Path | str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of the file at ``path``, both checked against their checksums when it has them."""
    tensors, metadata = _open(path, what, tensors=True)
    if CHECKSUM in metadata and metadata[CHECKSUM] != tensors_digest(tensors):
        raise _damaged(path, what, "its tensors do not match the checksum written with them")
    return tensors, metadata


def read_cache(path: Path | str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """(tensors, metadata) of the cache file at ``path``; None when it is absent, or damaged (then a warning says
    so: the caller recomputes it and overwrites the damaged file, which cirlib wrote under its own key-named name)."""
    try:
        return read_tensors(path, what)
    except FileError as error:
        if Path(path).exists():
            warnings.warn(f"{error.path}: {error.problem}; computing it again", stacklevel=2)
        return None


def _damaged(path: Path | str, what: str, cause: object) -> FileError:
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return FileError(path, f"{what} is truncated or damaged ({reason})",
                     "delete it and write it again (rerun the command that made it), or restore a good copy")
