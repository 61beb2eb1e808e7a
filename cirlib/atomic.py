"""Atomic file writes: a file is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, IO


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    For writers that want a file name (safetensors' ``save_file``) rather than a handle.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
    return Path(path)


def write_json(path: Path | str, data: Any, indent: int | None = 2) -> Path:
    """Write JSON atomically, UTF-8, with a trailing newline (same data, same bytes)."""
    text = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_text(path: Path | str, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
