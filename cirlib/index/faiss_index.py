"""FAISS indexes from a factory string ("Flat", "HNSW32", "IVF4096,PQ64", ...), behind cirlib's interface.

The string is faiss's own configuration language (``faiss.index_factory``), passed through as is;
the index always uses inner product (``metric="cosine"`` normalises first). Ids are kept by an
``IndexIDMap`` around it, so any factory string accepts arbitrary integer ids.

Training (IVF, PQ, ...) happens on the first ``add`` unless ``train`` was called before, on at most
``train_size`` vectors drawn at random (seeded). Too few vectors for the requested lists or codebooks
is a clear error; faiss recommends about 39 training vectors per list.

Search parameters are set explicitly, never left to faiss's defaults (HNSW's efSearch=16 loses
much recall): ``params`` is a ``ParameterSpace`` string such as ``"nprobe=32"`` or
``"efSearch=128"``; by default IVF indexes get nprobe=16 and HNSW indexes efSearch=128.

``save`` writes faiss's binary file and a JSON sidecar ``<path>.json`` with the metadata; both
atomically, the index first, so a sidecar always describes a complete index file. ``load`` refuses a
sidecar that is not JSON or lacks fields, and an index file faiss cannot read (truncated), with a
``FileError`` naming the file. faiss files carry no checksum: a flipped byte in the vectors goes unseen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm

from cirlib.index.base import Index, check_fit, check_metadata
from cirlib.util.atomic import atomic_path, write_json
from cirlib.util.errors import FileError

DEFAULT_NPROBE = 16
DEFAULT_EF_SEARCH = 128
RECOMMENDED_PER_LIST = 39  # faiss warns below 39 training points per k-means centroid
_ADD_BATCH = 65_536  # rows per faiss add call (one progress step)
_FIELDS = {"spec": str, "params": str, "train_size": int, "seed": int}  # the sidecar's fields beyond the shared ones
_RESAVE = "rebuild the index and save it again (the file was truncated, damaged or edited)"


def sidecar_path(path: Path | str) -> Path:
    """Where ``FaissIndex.save`` puts the metadata of the index saved at ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _default_params(index: faiss.Index) -> str:
    """Explicit search parameters for the index's type (empty when it has none)."""
    if faiss.try_extract_index_ivf(index) is not None:
        return f"nprobe={DEFAULT_NPROBE}"
    if isinstance(faiss.downcast_index(index), faiss.IndexHNSW):
        return f"efSearch={DEFAULT_EF_SEARCH}"
    return ""


def _training_needs(index: faiss.Index) -> list[tuple[int, str]]:
    """(minimum vectors, reason) for each k-means the index trains: IVF lists and PQ codebooks."""
    ivf = faiss.try_extract_index_ivf(index)
    needs = [] if ivf is None else [(ivf.nlist, f"{ivf.nlist} inverted lists")]
    for part in (index, ivf):
        quantizer = None if part is None else getattr(faiss.downcast_index(part), "pq", None)
        if quantizer is not None:
            needs.append((quantizer.ksub, f"{quantizer.ksub} centroids per product-quantizer codebook"))
    return needs


def _skip_polysemous_training(index: faiss.Index) -> None:
    """Turn off PQ's polysemous training: it serves only Hamming-filtered search, which cirlib does not
    use, and made training PQ64 on 10k vectors take 426 s instead of 57 s (one busy core)."""
    for part in (index, faiss.try_extract_index_ivf(index)):
        part = None if part is None else faiss.downcast_index(part)
        if part is not None and hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False


def _numpy(features: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)


class FaissIndex(Index):
    """A faiss index (factory string ``spec``) with ids, explicit search parameters and training checks."""

    backend = "faiss"

    def __init__(self, dim: int, spec: str = "Flat", metric: str = "ip", model: str = "", params: str | None = None,
                 train_size: int = 100_000, seed: int = 0) -> None:
        super().__init__(dim, metric, model)
        try:
            self._inner = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise ValueError(f"faiss cannot build index {spec!r}: {str(error).splitlines()[-1]}. Fix: use an "
                             "index_factory string such as 'Flat', 'HNSW32', 'IVF1024,Flat', 'IVF4096,PQ64'") from None
        _skip_polysemous_training(self._inner)
        self._index = faiss.IndexIDMap(self._inner)
        self.spec, self.train_size, self.seed = spec, int(train_size), seed
        self.params = _default_params(self._inner) if params is None else params
        self._apply_params()

    def _apply_params(self) -> None:
        if not self.params:
            return
        try:
            faiss.ParameterSpace().set_index_parameters(self._inner, self.params)
        except RuntimeError as error:
            raise ValueError(f"search parameters {self.params!r} do not apply to faiss index {self.spec!r} "
                             f"({str(error).splitlines()[-1]}). Fix: nprobe is for IVF, efSearch for HNSW") from None

    @property
    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def _extra_metadata(self) -> dict[str, Any]:
        return {"spec": self.spec, "params": self.params, "train_size": self.train_size, "seed": self.seed}

    def train(self, features: Any) -> None:
        """Train the index's quantizers on (a seeded sample of at most ``train_size`` of) ``features``."""
        vectors = _numpy(self._matrix(features, "training features"))
        for needed, reason in _training_needs(self._inner):
            if len(vectors) < needed:
                raise ValueError(
                    f"faiss index {self.spec!r} needs at least {needed} training vectors ({reason}; faiss "
                    f"recommends {RECOMMENDED_PER_LIST * needed}), got {len(vectors)}. Fix: train on more "
                    "vectors, or ask for fewer lists, e.g. IVF<n> with n near 4*sqrt(gallery size)")
        if len(vectors) > self.train_size:
            chosen = np.random.default_rng(self.seed).choice(len(vectors), self.train_size, replace=False)
            vectors = vectors[np.sort(chosen)]
        try:
            self._index.train(vectors)
        except RuntimeError as error:
            raise ValueError(f"training faiss index {self.spec!r} on {len(vectors)} vectors failed: "
                             f"{str(error).splitlines()[-1]}") from None

    def _add(self, features: torch.Tensor, ids: np.ndarray) -> None:
        if not self.is_trained:
            self.train(features)
        vectors = _numpy(features)
        starts = range(0, len(vectors), _ADD_BATCH)
        for start in tqdm(starts, desc=f"faiss add ({self.spec})", leave=False, disable=len(starts) < 4):
            self._index.add_with_ids(vectors[start:start + _ADD_BATCH], ids[start:start + _ADD_BATCH])

    def _search(self, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self._index.search(_numpy(queries), k)
        return scores, ids

    def save(self, path: Path | str) -> Path:
        """faiss's binary file at ``path`` plus the JSON sidecar ``<path>.json``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self._index, str(tmp))
        write_json(sidecar_path(path), self.metadata())
        return path

    @classmethod
    def load(cls, path: Path | str, *, model: str | None, dim: int | None = None, **options: Any) -> FaissIndex:
        """Read ``save``'s files; ``options`` may override ``params`` (search parameters)."""
        path, sidecar = Path(path), sidecar_path(path)
        if not path.is_file() or not sidecar.is_file():
            raise FileNotFoundError(f"a saved FaissIndex needs both {path} and its sidecar {sidecar}; "
                                    f"missing: {', '.join(str(p) for p in (path, sidecar) if not p.is_file())}")
        metadata = _read_sidecar(sidecar)
        check_metadata(metadata, sidecar, cls.backend, _FIELDS)
        check_fit(metadata, path, model, dim)
        stored = _read_index(path)
        if stored.ntotal != metadata["count"] or stored.d != metadata["dim"]:
            raise FileError(path, f"holds {stored.ntotal} vectors of dimension {stored.d} but its sidecar says "
                                  f"{metadata['count']} of {metadata['dim']} (an interrupted save?)", _RESAVE)
        settings = {key: metadata[key] for key in ("params", "train_size", "seed")} | options
        index = cls(metadata["dim"], metadata["spec"], metadata["metric"], metadata["model"], **settings)
        index._index = stored  # read_index returns the IndexIDMap, which owns the inner index
        index._inner = faiss.downcast_index(stored.index)
        index._apply_params()
        return index


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    """The metadata object of a sidecar; an unreadable file, invalid JSON or another JSON type is a FileError."""
    try:
        metadata = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FileError(sidecar, f"is not a readable JSON file ({error})", _RESAVE) from None
    if not isinstance(metadata, dict):
        raise FileError(sidecar, f"holds a JSON {type(metadata).__name__}, not the index's metadata object", _RESAVE)
    return metadata


def _read_index(path: Path) -> faiss.Index:
    """faiss's ``read_index``; a file it cannot read (truncated, damaged, foreign) is a FileError."""
    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:
        reason = str(error).splitlines()[-1].rpartition("Error: ")[2]
        raise FileError(path, f"is not a faiss index file, or is a truncated or damaged one ({reason})",
                        _RESAVE) from None
