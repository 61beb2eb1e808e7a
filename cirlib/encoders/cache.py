"""Feature cache: safetensors files keyed by everything that determines the features.

The key hashes the encoder's identity (name + weights hash), its preprocessing and precision, and the inputs
(image names with file sizes and modification times, or the texts themselves). It is stored in
the file's metadata and checked on every read, so a stale file can never be served, even if
renamed. Extraction runs in chunks, each saved atomically; a killed extraction resumes from the
chunks on disk, and only complete files ever carry the final name.

Under ``torchrun`` (a cache with a multi-process ``DistContext``) every process encodes its share of
each chunk's batches and receives the whole chunk (see :mod:`cirlib.encoders.extract`), so the one
file written equals a single process's. Only the main process touches files: it alone reads, writes
and removes them, decides whether a file on disk is used (and broadcasts that decision, so all
processes take the same collective path whatever the file system shows them), and sends what it
read to the others. No other process can read a half-written file or race it for a write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open

from .distributed import DistContext, broadcast_from_main, is_main, main_decides
from .extract import encode_images, encode_texts
from .loading import Encoder
from .tensor_io import save_tensors

FORMAT = "cirlib-features-2"


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _file_stamp(path: Path) -> list:
    stat = os.stat(path)
    return [path.name, stat.st_size, stat.st_mtime_ns]


class FeatureCache:
    """Image and text features for one folder of safetensors files, extracted by this process alone or,
    with a multi-process ``context``, by all of its processes together (each must then ask for the same
    features in the same order)."""

    def __init__(self, folder: Path | str, chunk_size: int = 4096, context: DistContext | None = None) -> None:
        self.folder, self.chunk_size, self.context = Path(folder), chunk_size, context

    def image_features(self, encoder: Encoder, names: Sequence[str], paths: Sequence[Path | str], label: str,
                       **encode_options) -> torch.Tensor:
        """Features of the images ``paths`` (named ``names``), computed once per key. ``label``
        (e.g. "synth-cirr-val") only names the file; the key decides whether it is reused."""
        paths = [Path(p) for p in paths]
        key = _key({"format": FORMAT, **encoder.feature_key, "names": list(names),
                    "files": [_file_stamp(p) for p in paths]})
        return self._cached(key, f"{label}-images", list(names),
                            lambda lo, hi: encode_images(encoder, paths[lo:hi], context=self.context, **encode_options))

    def text_features(self, encoder: Encoder, texts: Sequence[str], label: str, **encode_options) -> torch.Tensor:
        """Features of ``texts``, computed once per key."""
        key = _key({"format": FORMAT, **encoder.feature_key, "texts": list(texts)})
        return self._cached(key, f"{label}-texts", list(texts),
                            lambda lo, hi: encode_texts(encoder, texts[lo:hi], context=self.context, **encode_options))

    def path_for(self, key: str, label: str) -> Path:
        return self.folder / f"{label}-{key[:16]}.safetensors"

    def _cached(self, key: str, label: str, items: list[str],
                encode: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
        path = self.path_for(key, label)
        starts = range(0, len(items), self.chunk_size)
        parts = [path.with_name(f".{path.stem}.part{index:05d}.safetensors") for index in range(len(starts))]

        def chunks() -> torch.Tensor:
            pieces = [self._stored_or(part, key, functools.partial(encode, start, start + self.chunk_size))
                      for part, start in zip(parts, starts)]
            return torch.cat(pieces) if pieces else torch.empty(0)
        features = self._stored_or(path, key, chunks, {"items": json.dumps(items)})
        if is_main(self.context):  # no chunk outlives its complete file
            for part in parts:
                part.unlink(missing_ok=True)
        return features

    def _stored_or(self, path: Path, key: str, compute: Callable[[], torch.Tensor],
                   metadata: dict[str, str] | None = None) -> torch.Tensor:
        """The features the main process finds at ``path`` under ``key``, sent to every process; else
        ``compute()`` on every process (collectively), saved by the main process."""
        stored = _read(path, key) if is_main(self.context) else None
        if main_decides(stored is not None, self.context):
            return broadcast_from_main(stored, self.context)
        features = compute()
        if is_main(self.context):
            save_tensors(path, {"features": features}, {"key": key, **(metadata or {})})
        return features


def _read(path: Path, key: str) -> torch.Tensor | None:
    """The features stored at ``path`` if it exists and carries ``key``; else None. One open: a file that
    another job replaces meanwhile is read whole or not at all."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.get_tensor("features") if (handle.metadata() or {}).get("key") == key else None
    except FileNotFoundError:
        return None
