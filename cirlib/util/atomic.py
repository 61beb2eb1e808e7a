"""Atomic file writes: a file is either absent or complete, never half-written.

A temporary file beside the target is renamed onto it when complete. ``mkstemp`` creates files
readable by their owner only; the finished file gets the mode ``open()`` would have given it
(0666 less the umask), so data, runs and caches in a group-shared folder stay readable to the group.
A killed write leaves its temporary file; the owners of the files (synth builds, run folders) remove
those with the files they delete (:func:`remove_written`), knowing them by name (:func:`temporary_target`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Callable

TEMPORARY_SUFFIX = ".tmp"  # a write in progress is ".<name>.<random>.tmp" beside its target


def temporary_target(name: str) -> str | None:
    """The file name whose atomic write left the temporary file ``name`` (".<target>.<random>.tmp"); else None.
    A process killed mid-write leaves such a file behind."""
    if name.startswith(".") and name.endswith(TEMPORARY_SUFFIX):
        return name[1:-len(TEMPORARY_SUFFIX)].rpartition(".")[0] or None
    return None


def remove_temporaries(paths: Iterable[Path]) -> None:
    """Delete the temporary files that killed atomic writes of ``paths`` left beside them."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            for entry in entries:
                if temporary_target(entry.name) in names:
                    Path(entry.path).unlink(missing_ok=True)


def remove_written(root: Path, paths: Iterable[Path]) -> int:
    """Delete ``paths`` (files cirlib wrote, under ``root`` and spelled like it), the temporary files of their
    interrupted writes, then the folders below ``root`` that this leaves empty; return how many files went."""
    paths, removed, emptied = list(paths), 0, set()
    remove_temporaries(paths)
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
            removed += 1
        emptied.update(p for p in path.parents if p != root and p.is_relative_to(root))
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty, or already gone
            folder.rmdir()
    return removed


def current_umask() -> int:
    """This process's umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        match = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1), 8)
    mask = os.umask(0o022)  # no /proc: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a new file gets from ``open()``: 0666 less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    For writers that want a file name (safetensors' ``save_file``) rather than a handle.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
    return Path(path)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` atomically."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_json(path: Path | str, data: Any, indent: int | None = 2) -> Path:
    """Write JSON atomically, UTF-8, with a trailing newline (same data, same bytes)."""
    text = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
    return write_bytes(path, text.encode("utf-8"))


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def save_figure(path: Path | str, figure: Any, **options: Any) -> Path:
    """A matplotlib figure saved atomically, in the format its suffix names (``options``: savefig's, e.g. dpi)."""
    return write_atomic(path, lambda handle: figure.savefig(handle, format=Path(path).suffix[1:], **options))
