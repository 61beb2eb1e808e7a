"""The one retrieval interface every backend implements, and the checks they all share.

An index holds gallery feature vectors with integer ids and answers top-k queries by inner
product (``metric="ip"``; ``"cosine"`` L2-normalises features and queries first):

    index.add(features, ids=None)                      # ids default to 0, 1, 2, ... (next free)
    scores, ids = index.search(queries, k, exclude=None)   # numpy (Q, k) float32 and int64
    index.save(path);  Backend.load(path, model=encoder.identity)

Rows with fewer than k results are padded with id -1 and score -inf. ``exclude`` gives, per
query, ids that must not be returned (CIRR drops the reference image): one id, a list of ids,
or None. Every backend searches k + (most exclusions of any query) and filters, which is exact
for an exact backend. A saved index records its dimension, metric and the identity of the model
whose features it holds; loading it for another model or dimension raises ``IndexMismatchError``.
A saved index that is unreadable, damaged or not an index raises ``cirlib.util.errors.FileError`` naming the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cirlib.util.errors import FileError

FORMAT = "cirlib-index-1"
METRICS = ("ip", "cosine")
_FIELDS = {"dim": int, "metric": str, "model": str, "count": int}  # what every saved index's metadata holds

Exclusions = Sequence[int | Sequence[int] | None]
"""One entry per query: an id, a sequence of ids, or None (nothing to exclude)."""


class IndexMismatchError(ValueError):
    """A saved index does not fit what the caller is about to query it with (model or dimension)."""


class Index(ABC):
    """Gallery vectors with int64 ids, searched by inner product; see the module docstring."""

    backend: str = ""

    def __init__(self, dim: int, metric: str = "ip", model: str = "") -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer (the feature dimension), got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.dim, self.metric, self.model = int(dim), metric, str(model)

    # -- what a backend provides ------------------------------------------------------------
    @property
    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids in the index, in insertion order (int64)."""

    @abstractmethod
    def _add(self, features: torch.Tensor, ids: np.ndarray) -> None:
        """Store checked float32 features (rows) under checked, new ids."""

    @abstractmethod
    def _search(self, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for checked float32 queries; may return fewer than k columns."""

    @abstractmethod
    def save(self, path: Path | str) -> Path:
        """Write the index atomically with its metadata; return the path."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path | str, *, model: str | None, dim: int | None = None, **options: Any) -> Index:
        """Read an index saved by ``save``; refuse it if ``model`` or ``dim`` differ (None: no check)."""

    def _extra_metadata(self) -> dict[str, Any]:
        return {}

    # -- the shared interface -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.metadata().items() if key != "format")
        return f"{type(self).__name__}({fields})"

    def metadata(self) -> dict[str, Any]:
        """What ``save`` records and ``load`` checks."""
        return {"format": FORMAT, "backend": self.backend, "dim": self.dim, "metric": self.metric,
                "model": self.model, "count": len(self)} | self._extra_metadata()

    def add(self, features: Any, ids: Any = None) -> None:
        """Add (n, dim) features (tensor or array); ``ids`` default to the next free integers."""
        features = self._matrix(features, "features")
        self._add(features, self._new_ids(ids, len(features)))

    def search(self, queries: Any, k: int, exclude: Exclusions | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (Q, k), best first; ties rank by insertion order in exact backends."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        queries = self._matrix(queries, "queries")
        excluded = exclusion_matrix(exclude, len(queries))
        if len(queries) == 0 or len(self) == 0:
            return _pad(np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64), int(k))
        scores, ids = self._search(queries, int(k) + excluded.shape[1])
        return drop_excluded(scores, ids, excluded, int(k))

    def _matrix(self, values: Any, what: str) -> torch.Tensor:
        """``values`` as a finite float32 (n, dim) tensor (on its own device), normalised for cosine."""
        matrix = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (n, {self.dim}) for this index (model {self.model!r}), "
                             f"got {tuple(matrix.shape)}. Fix: pass one row per item, encoded by the same model")
        matrix = matrix.to(torch.float32)
        problem = nonfinite_rows(matrix)
        if problem:
            raise ValueError(f"{what} {problem}; fix the features before indexing them")
        return F.normalize(matrix, dim=1) if self.metric == "cosine" else matrix

    def _new_ids(self, ids: Any, n: int) -> np.ndarray:
        """Checked int64 ids for n new rows: non-negative, unique, not already in the index."""
        existing = self.ids
        if ids is None:
            start = int(existing.max()) + 1 if len(existing) else 0
            return np.arange(start, start + n, dtype=np.int64)
        ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
        if ids.shape != (n,) or (n and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"ids must be {n} integers, one per feature row, got shape {ids.shape} "
                             f"and dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        problem = id_problem(ids, existing)
        if problem:
            raise ValueError(f"ids {problem}")
        return ids


def nonfinite_rows(matrix: torch.Tensor) -> str:
    """Which rows hold NaN or infinite values, for a message; "" when every value is finite.

    A NaN or infinity makes its row's sum NaN or infinite, so only rows whose sum is not finite (those, and
    rows of finite values whose sum overflows) are checked value by value: on 1M x 512 float32 on two CPU
    cores this takes 0.3 s instead of the 4.5 s of ``isfinite`` on every value.
    """
    suspects = (~torch.isfinite(matrix.sum(dim=1))).nonzero().flatten()
    bad = suspects[~torch.isfinite(matrix[suspects]).all(dim=1)]
    return f"rows {bad[:5].tolist()} ({len(bad)} in all) hold NaN or infinite values" if len(bad) else ""


def id_problem(ids: np.ndarray, existing: np.ndarray) -> str:
    """What is wrong with new int64 ids (negative, repeated, or already in ``existing``); "" when nothing is."""
    if len(ids) and ids.min() < 0:
        return "must be non-negative (-1 marks a missing result)"
    repeated = np.unique(ids[np.isin(ids, existing)].tolist() + _repeats(ids))
    if len(repeated):
        return f"must be unique; {len(repeated)} repeat or are already in the index, e.g. {repeated[:5].tolist()}"
    return ""


def _repeats(ids: np.ndarray) -> list[int]:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1].tolist()


def exclusion_matrix(exclude: Exclusions | None, n_queries: int) -> np.ndarray:
    """Per-query excluded ids as a (Q, e) int64 matrix padded with -1 (e = 0 when nothing is excluded)."""
    if exclude is None:
        return np.full((n_queries, 0), -1, dtype=np.int64)
    if len(exclude) != n_queries:
        raise ValueError(f"exclude needs one entry per query ({n_queries}), got {len(exclude)}")
    rows = [[] if entry is None else [int(entry)] if isinstance(entry, (int, np.integer)) else
            [int(value) for value in entry] for entry in exclude]
    matrix = np.full((n_queries, max(map(len, rows), default=0)), -1, dtype=np.int64)
    for query, row in enumerate(rows):
        matrix[query, :len(row)] = row
    return matrix


def drop_excluded(scores: np.ndarray, ids: np.ndarray, excluded: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded and missing (-1) ids, keep the order, cut or pad to k columns."""
    drop = (ids < 0) | (ids[:, :, None] == excluded[:, None, :]).any(axis=2)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    kept = ~np.take_along_axis(drop, order, axis=1)
    scores = np.where(kept, np.take_along_axis(scores, order, axis=1), -np.inf).astype(np.float32)
    return _pad(scores, np.where(kept, np.take_along_axis(ids, order, axis=1), -1).astype(np.int64), k)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (Q, n <= k) results to k columns with score -inf and id -1."""
    missing = k - scores.shape[1]
    return (np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf),
            np.pad(ids, ((0, 0), (0, missing)), constant_values=-1))


def check_metadata(metadata: dict[str, Any], source: Path | str, backend: str, fields: dict[str, type]) -> None:
    """Raise FileError unless ``metadata`` (read from ``source``) describes a cirlib ``backend`` index, with
    every shared field and every one of the backend's ``fields`` present and of its type."""
    if metadata.get("format") != FORMAT or metadata.get("backend") != backend:
        raise FileError(source, f"is not a saved cirlib {backend} index (format {metadata.get('format')!r}, "
                                f"backend {metadata.get('backend')!r})", "load it with cirlib.index.load_index, "
                        "or rebuild it")
    problem = _fields_problem(metadata, _FIELDS | fields)
    if problem:
        raise FileError(source, f"its index metadata {problem}", "rebuild the index and save it again "
                        "(the metadata was cut short or edited)")


def _fields_problem(metadata: dict[str, Any], expected: dict[str, type]) -> str:
    """What is wrong with a saved index's metadata fields (absent, wrong type, out of range); "" if nothing."""
    missing = [field for field in expected if field not in metadata]
    if missing:
        return f"lacks {', '.join(missing)}"
    wrong = [f"{field}={metadata[field]!r}" for field, kind in expected.items()
             if isinstance(metadata[field], bool) or not isinstance(metadata[field], kind)]
    if wrong:
        return f"has {', '.join(wrong)}, of the wrong type"
    if metadata["metric"] not in METRICS:
        return f"has metric={metadata['metric']!r}, not one of {METRICS}"
    if metadata["dim"] < 1 or metadata["count"] < 0:
        return f"has dim={metadata['dim']} and count={metadata['count']}; expected dim >= 1 and count >= 0"
    return ""


def check_fit(metadata: dict[str, Any], path: Path | str, model: str | None, dim: int | None) -> None:
    """Raise IndexMismatchError unless the index at ``path`` was built for ``model`` and ``dim`` (None: any)."""
    if model is not None and metadata["model"] != model:
        raise IndexMismatchError(
            f"{path} holds features of model {metadata['model']!r}, not {model!r}: its scores would be "
            f"meaningless for this model's queries. Fix: rebuild the index from {model!r}'s features, or "
            f"query it with {metadata['model']!r}")
    if dim is not None and metadata["dim"] != dim:
        raise IndexMismatchError(f"{path} holds {metadata['dim']}-d features, not {dim}-d. Fix: rebuild the "
                                 "index from features of the model you query it with")
