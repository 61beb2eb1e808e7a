"""Exact search in torch: chunked matmul + two-stage top-k, on CPU or CUDA, in bounded memory.

The gallery lives in host memory (the copy ``save`` writes). Search walks it in chunks of
``chunk_size`` rows; for each chunk and each batch of ``query_batch`` queries it computes the
(batch, chunk) scores, keeps their top k (``block_topk``) and merges them into each query's
running top k. Peak memory is therefore one score block, whatever the gallery size. On CUDA the
whole gallery is copied to the GPU once when it fits in half the free memory; otherwise
(``stream=True``) each chunk is copied from pinned host memory once per search, so a gallery
larger than GPU memory is searched at the speed of the host-to-device link.

Precision: the gallery is stored and scored in float32 on every device by default, and search
runs inside ``exact_float32`` (IEEE float32 matmuls, no TF32), so a recall table computed on a GPU
is the one computed on a CPU: kernels differ only in the order they add float32 products, which
moves scores by float32 rounding. ``dtype="float16"`` or ``"bfloat16"`` is an explicit speed option
for GPUs: half the memory and faster matmuls, but scores rounded to 11 or 8 significant bits, so
near ties reorder. Measured on CPU against float32 (``benchmarks/retrieval.py --sizes 20000
--queries 1000 --backends exact --dtype float16``: 20k x 512 random unit vectors, 1,000 queries,
top 50): recall@10 0.998 (float16) and 0.982 (bfloat16), recall@50 0.998 and 0.990; the whole top
50 in float32's order for 7.8% and 0% of the queries. Ties go to the lower position in every dtype.

Fused path (``fused``; by default on CUDA for float16 and bfloat16 when triton imports): a Triton kernel
(``cirlib.index.fused``) scores tiles in registers and writes only each 32-column block's maximum and the
candidates that can reach the top k, instead of the whole score block. Contract: the results equal a
brute force in the same precision (float16/bfloat16 products, exact in float32, summed in float32),
ranked by score with ties to the lower position; the scores it returns are those float32 sums, where the
torch path rounds each score to the index's dtype. Its GPU speed has not been measured yet (no GPU was
available when it was written); ``fused=False`` keeps the torch path, which float32 always uses.

Integrity: the file carries the sha256 of its tensors that ``save_tensors`` writes, and ``load`` reads it
with ``read_tensors``, which verifies it; ``load`` then checks the metadata against the tensors and what
``add`` checks of new rows (finite features, unique non-negative ids). A truncated, bit-flipped or edited
file is refused with one ``FileError`` naming it; files saved without a checksum (older cirlib) get every
check but that one. Cost at 1M x 512 float32 (a 1.9 GiB file), measured on two busy CPU cores: the
sha256 adds about 2.5 s to ``save`` and to ``load`` (load: 3.7 s instead of 0.5 s); the value checks 0.4 s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cirlib.index.base import Index, check_fit, check_metadata, id_problem, nonfinite_rows
from cirlib.index.topk import BLOCK, block_topk, merge_topk
from cirlib.util.device import exact_float32, resolve_device
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import read_metadata, read_tensors, save_tensors

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Default queries per batch and bytes per (query_batch, chunk_size) score block, by device type.
_DEFAULTS = {"cuda": (4096, 4 << 30), "cpu": (1024, 256 << 20)}
_PROGRESS_MIN_STEPS = 64  # below this many (chunk, batch) steps a search is quick: no progress bar
_WHAT = "the saved index"  # how tensor_io's errors name the file
_RESAVE = "rebuild the index from its features and save it again (the file was truncated, damaged or edited)"
_REDUCED = (torch.float16, torch.bfloat16)  # the dtypes the fused kernel scores

TopK = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""(queries, gallery chunk, k) -> each query's (values, columns) best k in the chunk, best first, ties by column."""


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A dtype name or torch dtype as a torch dtype; the same on every device (no device default)."""
    resolved = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if resolved not in _DTYPES.values():
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)} (or the torch dtype), got {dtype!r}")
    return resolved


def _torch_top_k(queries: torch.Tensor, chunk: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch path: the whole score block, then ``block_topk`` (scores in the index's dtype)."""
    return block_topk(queries @ chunk.T, k)


def fused_problem(device: torch.device, dtype: torch.dtype) -> str:
    """Why the fused kernel cannot search ``dtype`` features on ``device`` here ("" when it can)."""
    try:
        from cirlib.index.fused import unsupported
    except ImportError as error:
        return f"triton does not import ({error})"
    return unsupported(device, dtype)


def _fused_top_k(fused: bool | None, device: torch.device, dtype: torch.dtype) -> TopK | None:
    """The fused kernel's top-k if ``fused`` asks for it (None: on CUDA for float16/bfloat16 when it can run
    there), else None; ``fused=True`` where it cannot run is a ValueError saying why."""
    if fused is False or (fused is None and (device.type != "cuda" or dtype not in _REDUCED)):
        return None
    problem = fused_problem(device, dtype)
    if problem and fused:
        raise ValueError(f"fused=True cannot run here: {problem}. Fix: pass fused=None (automatic) or fused=False")
    if problem:
        return None
    from cirlib.index.fused import fused_topk
    return fused_topk


class ExactIndex(Index):
    """Brute-force inner-product search with torch; results equal a full matmul + stable sort.

    Exactness contract: the results equal a brute force in the index's dtype, ranked by score with ties to
    the lower position. float32: float32 products and sums. float16/bfloat16: on the torch path the matmul's
    scores rounded to that dtype; on the fused path (CUDA) the products summed in float32, unrounded."""

    backend = "exact"

    def __init__(self, dim: int, metric: str = "ip", model: str = "", device: str | torch.device = "auto",
                 dtype: str | torch.dtype = "float32", chunk_size: int | None = None,
                 query_batch: int | None = None, stream: bool | None = None, fused: bool | None = None) -> None:
        """``dtype``: float32 (default, on every device), float16 or bfloat16 for speed (see the module
        docstring). ``chunk_size`` gallery rows and ``query_batch`` queries per score block (defaults
        by device: a 4 GiB block on CUDA, 256 MiB on CPU); ``stream``: keep the gallery in host memory
        on CUDA (None: only when it does not fit). ``fused``: score with the Triton kernel (None: on CUDA
        for float16/bfloat16 when it can run there; True: required; False: the torch path); the ``fused``
        attribute says which path searches."""
        super().__init__(dim, metric, model)
        self.device = resolve_device(device)
        self.dtype = _resolve_dtype(dtype)
        default_batch, block_bytes = _DEFAULTS["cuda" if self.device.type == "cuda" else "cpu"]
        query_batch = query_batch or default_batch
        chunk_size = chunk_size or block_bytes // (query_batch * self.dtype.itemsize)
        if chunk_size < 1 or query_batch < 1:
            raise ValueError(f"chunk_size and query_batch must be positive, got {chunk_size} and {query_batch}")
        self.chunk_size = -(-chunk_size // BLOCK) * BLOCK  # whole blocks, so only the last chunk is padded
        self.query_batch, self.stream = query_batch, stream
        fused_top_k = _fused_top_k(fused, self.device, self.dtype)
        self.fused = fused_top_k is not None
        self._top_k: TopK = fused_top_k or _torch_top_k
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
        self._parts.append((self._cast(features, "cpu", "features"), ids))
        self._on_device = None

    def _cast(self, values: torch.Tensor, device: torch.device | str, what: str) -> torch.Tensor:
        """Finite float32 ``values`` in the index's dtype on ``device``; refuses values beyond its range."""
        cast = values.to(device, self.dtype)
        if nonfinite_rows(cast):
            raise ValueError(f"{what} exceed the range of {self.dtype} (float16: |x| <= 65504). "
                             "Fix: use dtype='float32', or metric='cosine' to normalise them")
        return cast

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
        queries = self._cast(queries, self.device, "queries")
        batches = range(0, len(queries), self.query_batch)
        chunks = range(0, n, self.chunk_size)
        best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(batches)
        steps = tqdm(total=len(chunks) * len(batches), desc="exact search", leave=False,
                     disable=len(chunks) * len(batches) < _PROGRESS_MIN_STEPS)
        with torch.inference_mode(), exact_float32(), steps:
            for start in chunks:
                stop = min(start + self.chunk_size, n)
                chunk = (gallery[start:stop] if gallery is not None else
                         self._features[start:stop].to(self.device, non_blocking=True))
                for slot, first in enumerate(batches):
                    values, columns = self._top_k(queries[first:first + self.query_batch], chunk, k)
                    positions = columns + start
                    best[slot] = (values, positions) if best[slot] is None else merge_topk(*best[slot], values,
                                                                                           positions, k)
                    steps.update()
        values = torch.cat([v for v, _ in best]).float().cpu().numpy()
        positions = torch.cat([p for _, p in best]).cpu().numpy()
        return values, self._ids[positions]

    def save(self, path: Path | str) -> Path:
        """One safetensors file: features (in the index's dtype), ids, the metadata and the tensors' checksum."""
        metadata = {key: str(value) for key, value in self.metadata().items()}
        return save_tensors(path, {"features": self.features, "ids": torch.from_numpy(self.ids)}, metadata)

    @classmethod
    def load(cls, path: Path | str, *, model: str | None, dim: int | None = None, **options: Any) -> ExactIndex:
        """Read ``save``'s file; ``options`` as for the constructor (``dtype`` defaults to the saved one).

        Raises FileError for a file that is not an ExactIndex or is damaged (see the module docstring).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved index at {path}")
        stored = read_metadata(path, _WHAT)
        metadata = stored | {key: int(stored[key]) for key in ("dim", "count") if stored.get(key, "").isdecimal()}
        check_metadata(metadata, path, cls.backend, {"dtype": str})
        check_fit(metadata, path, model, dim)
        tensors, _ = read_tensors(path, _WHAT)
        _check_layout(path, metadata, tensors)
        features, ids = tensors["features"], tensors["ids"].numpy()
        _check_values(path, features, ids)
        index = cls(metadata["dim"], metadata["metric"], metadata["model"],
                    **({"dtype": metadata["dtype"]} | options))
        index._add(features, ids)
        return index


def _check_layout(path: Path, metadata: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Raise FileError unless the file holds (count, dim) features in a known dtype and (count,) int64 ids."""
    if metadata["dtype"] not in _DTYPES:
        raise FileError(path, f"its index metadata has dtype={metadata['dtype']!r}, not one of {', '.join(_DTYPES)}",
                        _RESAVE)
    expected = {"features": f"{metadata['dtype']} of shape {(metadata['count'], metadata['dim'])}",
                "ids": f"int64 of shape {(metadata['count'],)}"}
    for name, layout in expected.items():
        tensor = tensors.get(name)
        found = ("nothing" if tensor is None else
                 f"{str(tensor.dtype).removeprefix('torch.')} of shape {tuple(tensor.shape)}")
        if found != layout:
            raise FileError(path, f"holds {name} as {found}, but its metadata describes {layout}", _RESAVE)


def _check_values(path: Path, features: torch.Tensor, ids: np.ndarray) -> None:
    """Raise FileError unless the stored rows are finite and the ids unique and non-negative, as ``add``
    requires of new ones."""
    rows, wrong_ids = nonfinite_rows(features), id_problem(ids, ids[:0])
    if rows or wrong_ids:
        raise FileError(path, f"its stored features {rows}" if rows else f"its stored ids {wrong_ids}", _RESAVE)
