"""Exact search in torch: chunked matmul + two-stage top-k, on CPU or CUDA, in bounded memory.

The gallery lives in host memory (the copy ``save`` writes). Search walks it in chunks of
``chunk_size`` rows; for each chunk and each batch of ``query_batch`` queries it computes the
(batch, chunk) scores, keeps their top k (``block_topk``) and merges them into each query's
running top k. Peak memory is therefore one score block, whatever the gallery size. On CUDA the
whole gallery is copied to the GPU once when it fits in half the free memory; otherwise
(``stream=True``) each chunk is copied from pinned host memory once per search, so a gallery
larger than GPU memory is searched at the speed of the host-to-device link.

Precision: ``dtype="auto"`` stores and multiplies in float16 on CUDA (accumulating in float32)
and float32 on CPU. Float16 scores tie more often; ties go to the lower position as everywhere
in cirlib, so results can differ from float32 where scores differ by less than about 1e-3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..encoders.device import resolve_device
from ..encoders.tensor_io import save_tensors
from .base import Index, check_metadata
from .topk import BLOCK, block_topk, merge_topk

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Defaults sized for one score block of 4 GiB (CUDA, float16) or 256 MiB (CPU, float32).
_DEFAULTS = {"cuda": {"chunk_size": 524_288, "query_batch": 4096}, "cpu": {"chunk_size": 65_536, "query_batch": 1024}}
_PROGRESS_MIN_STEPS = 64  # below this many (chunk, batch) steps a search is quick: no progress bar


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    resolved = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if resolved not in _DTYPES.values():
        raise ValueError(f"dtype must be 'auto' or one of {', '.join(_DTYPES)}, got {dtype!r}")
    return resolved


class ExactIndex(Index):
    """Brute-force inner-product search with torch; results equal a full matmul + stable sort."""

    backend = "exact"

    def __init__(self, dim: int, metric: str = "ip", model: str = "", device: str | torch.device = "auto",
                 dtype: str | torch.dtype = "auto", chunk_size: int | None = None, query_batch: int | None = None,
                 stream: bool | None = None) -> None:
        """``chunk_size`` gallery rows and ``query_batch`` queries per score block (defaults by device);
        ``stream``: keep the gallery in host memory on CUDA (None: only when it does not fit)."""
        super().__init__(dim, metric, model)
        self.device = resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        defaults = _DEFAULTS[self.device.type if self.device.type == "cuda" else "cpu"]
        chunk_size, query_batch = chunk_size or defaults["chunk_size"], query_batch or defaults["query_batch"]
        if chunk_size < 1 or query_batch < 1:
            raise ValueError(f"chunk_size and query_batch must be positive, got {chunk_size} and {query_batch}")
        self.chunk_size = -(-chunk_size // BLOCK) * BLOCK  # whole blocks, so only the last chunk is padded
        self.query_batch, self.stream = query_batch, stream
        self._parts: list[tuple[torch.Tensor, np.ndarray]] = []
        self._features = torch.zeros((0, self.dim), dtype=self.dtype)
        self._ids = np.zeros(0, dtype=np.int64)
        self._on_device: torch.Tensor | None = None

    @property
    def ids(self) -> np.ndarray:
        self._consolidate()
        return self._ids

    @property
    def features(self) -> torch.Tensor:
        """The stored gallery, (n, dim) in the index's dtype, on the host."""
        self._consolidate()
        return self._features

    def _extra_metadata(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype).removeprefix("torch.")}

    def _add(self, features: torch.Tensor, ids: np.ndarray) -> None:
        self._parts.append((features.to("cpu", self.dtype), ids))
        self._on_device = None

    def _consolidate(self) -> None:
        """Join pending additions into one host tensor (pinned when it will be copied to a GPU)."""
        if not self._parts:
            return
        self._features = torch.cat([self._features] + [features for features, _ in self._parts])
        self._ids = np.concatenate([self._ids] + [ids for _, ids in self._parts])
        if self.device.type == "cuda":
            self._features = self._features.pin_memory()
        self._parts = []

    def _gallery_on_device(self) -> torch.Tensor | None:
        """The gallery on the compute device, or None when it must stream chunk by chunk."""
        if self.device.type != "cuda":
            return self._features
        if self._on_device is None:
            stream = self.stream
            if stream is None:
                free, _ = torch.cuda.mem_get_info(self.device)
                stream = self._features.nbytes > free // 2
            if stream:
                return None
            self._on_device = self._features.to(self.device)
        return self._on_device

    def _search(self, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._consolidate()
        gallery, n = self._gallery_on_device(), len(self._features)
        queries = queries.to(self.device, self.dtype)
        batches = range(0, len(queries), self.query_batch)
        chunks = range(0, n, self.chunk_size)
        best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(batches)
        steps = tqdm(total=len(chunks) * len(batches), desc="exact search", leave=False,
                     disable=len(chunks) * len(batches) < _PROGRESS_MIN_STEPS)
        with torch.inference_mode(), steps:
            for start in chunks:
                stop = min(start + self.chunk_size, n)
                chunk = (gallery[start:stop] if gallery is not None else
                         self._features[start:stop].to(self.device, non_blocking=True))
                for slot, first in enumerate(batches):
                    values, columns = block_topk(queries[first:first + self.query_batch] @ chunk.T, k)
                    positions = columns + start
                    best[slot] = (values, positions) if best[slot] is None else merge_topk(*best[slot], values,
                                                                                           positions, k)
                    steps.update()
        values = torch.cat([v for v, _ in best]).float().cpu().numpy()
        positions = torch.cat([p for _, p in best]).cpu().numpy()
        return values, self._ids[positions]

    def save(self, path: Path | str) -> Path:
        """One safetensors file: features (in the index's dtype), ids, and the metadata."""
        metadata = {key: str(value) for key, value in self.metadata().items()}
        return save_tensors(path, {"features": self.features, "ids": torch.from_numpy(self.ids)}, metadata)

    @classmethod
    def load(cls, path: Path | str, *, model: str | None, dim: int | None = None, **options: Any) -> ExactIndex:
        """Read ``save``'s file; ``options`` as for the constructor (``dtype`` defaults to the saved one)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved index at {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                stored = dict(handle.metadata() or {})
        except Exception as error:  # safetensors raises its own error types for foreign files
            raise ValueError(f"{path} is not a safetensors file ({error}); an ExactIndex is saved as one") from None
        metadata = stored | {key: int(stored[key]) for key in ("dim", "count") if key in stored}
        check_metadata(metadata, path, cls.backend, model, dim)
        tensors = load_file(str(path))
        index = cls(metadata["dim"], metadata["metric"], metadata["model"],
                    **({"dtype": metadata["dtype"]} | options))
        index._add(tensors["features"], tensors["ids"].numpy())
        return index
