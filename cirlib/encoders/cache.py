"""Feature cache: safetensors files keyed by everything that determines the features.

The key hashes the encoder's identity (name + weights hash), its preprocessing and precision, and the inputs
(image names with file sizes and modification times, or the texts themselves). It is stored in
the file's metadata and checked on every read, so a stale file can never be served, even if
renamed. Extraction runs in chunks, each saved atomically; a killed extraction resumes from the
chunks on disk, and only complete files ever carry the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

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
    """Image and text features for one folder of safetensors files."""

    def __init__(self, folder: Path | str, chunk_size: int = 4096) -> None:
        self.folder, self.chunk_size = Path(folder), chunk_size

    def image_features(self, encoder: Encoder, names: Sequence[str], paths: Sequence[Path | str], label: str,
                       **encode_options) -> torch.Tensor:
        """Features of the images ``paths`` (named ``names``), computed once per key. ``label``
        (e.g. "synth-cirr-val") only names the file; the key decides whether it is reused."""
        paths = [Path(p) for p in paths]
        key = _key({"format": FORMAT, **encoder.feature_key, "names": list(names),
                    "files": [_file_stamp(p) for p in paths]})
        return self._cached(key, f"{label}-images", list(names),
                            lambda lo, hi: encode_images(encoder, paths[lo:hi], **encode_options))

    def text_features(self, encoder: Encoder, texts: Sequence[str], label: str, **encode_options) -> torch.Tensor:
        """Features of ``texts``, computed once per key."""
        key = _key({"format": FORMAT, **encoder.feature_key, "texts": list(texts)})
        return self._cached(key, f"{label}-texts", list(texts),
                            lambda lo, hi: encode_texts(encoder, texts[lo:hi], **encode_options))

    def path_for(self, key: str, label: str) -> Path:
        return self.folder / f"{label}-{key[:16]}.safetensors"

    def _cached(self, key: str, label: str, items: list[str], encode: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
        path = self.path_for(key, label)
        stored = _read(path, key)
        if stored is not None:
            return stored
        chunks = []
        for index, start in enumerate(range(0, len(items), self.chunk_size)):
            part = path.with_name(f".{path.stem}.part{index:05d}.safetensors")
            features = _read(part, key)
            if features is None:
                features = encode(start, start + self.chunk_size)
                save_tensors(part, {"features": features}, {"key": key})
            chunks.append(features)
        features = torch.cat(chunks) if chunks else torch.empty(0)
        save_tensors(path, {"features": features}, {"key": key, "items": json.dumps(items)})
        for index in range(len(chunks)):
            path.with_name(f".{path.stem}.part{index:05d}.safetensors").unlink(missing_ok=True)
        return features


def _read(path: Path, key: str) -> torch.Tensor | None:
    """The features stored at ``path`` if it exists and carries ``key``; else None."""
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        if (handle.metadata() or {}).get("key") != key:
            return None
    return load_file(str(path))["features"]
