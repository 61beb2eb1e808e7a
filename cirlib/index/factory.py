"""One door to every index: ``build_index(spec, dim)`` and ``load_index(path, model=...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cirlib.index.base import Index
from cirlib.index.exact import ExactIndex
from cirlib.index.faiss_index import FaissIndex, sidecar_path

EXACT = "exact"


def build_index(spec: str, dim: int, *, metric: str = "ip", model: str = "", **options: Any) -> Index:
    """An empty index: ``"exact"`` is the torch ``ExactIndex``; anything else is a faiss factory string.

    ``model`` is the identity of the encoder whose features go in (e.g. ``Encoder.identity``); it
    is saved with the index and checked on load. ``options`` go to the backend's constructor
    (exact: device, dtype, chunk_size, query_batch, stream; faiss: params, train_size, seed).
    """
    if spec == EXACT:
        return ExactIndex(dim, metric=metric, model=model, **options)
    return FaissIndex(dim, spec, metric=metric, model=model, **options)


def load_index(path: Path | str, *, model: str | None, dim: int | None = None, **options: Any) -> Index:
    """A saved index of either backend (a faiss index has a ``<path>.json`` sidecar).

    Raises ``IndexMismatchError`` when it was built for another ``model`` or ``dim`` (pass None
    to skip a check). ``options`` go to the backend's ``load``.
    """
    backend = FaissIndex if sidecar_path(path).is_file() else ExactIndex
    return backend.load(path, model=model, dim=dim, **options)
