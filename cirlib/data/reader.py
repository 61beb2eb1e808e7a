"""The base of the dataset readers: the root-folder check, each JSON file parsed once, each image folder listed once,
and the ``on_missing`` policy for images a listing file names but the disk lacks.

Images are checked against one ``os.scandir`` listing per directory (FashionIQ has ~77k images; a stat per image
would be slow). Every image path a listing file gives is checked once, when the file is parsed, to stay inside the
dataset root (:func:`escape` says why one would not).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any, ClassVar, Literal, TypeVar

from cirlib.data.errors import DatasetError
from cirlib.data.jsonio import expect, load_json

OnMissing = Literal["error", "skip"]
T = TypeVar("T")

PREVIEW = 5  # how many missing names a message shows


class MissingImagesWarning(UserWarning):
    """Images listed by a dataset file are not on disk and the affected entries were dropped."""


def preview(names: Sequence[str]) -> str:
    """The first few names, comma-separated, with a count of the rest."""
    shown = ", ".join(names[:PREVIEW])
    return shown + (f", ... ({len(names) - PREVIEW} more)" if len(names) > PREVIEW else "")


def escape(relpath: str) -> str:
    """Why ``relpath``, joined to a dataset root, could leave it ("is absolute", ...); "" when it cannot.

    The check is lexical: the path must be relative, name something, and have no ``..`` part.
    Symlinks are deliberately not resolved: an image folder inside the root that links to another
    disk is a common, legitimate setup, and resolving would refuse it. ``..`` is refused even where
    it would normalise to a path inside (``a/../b``): the OS applies ``..`` after following a link,
    so ``images/../x``, with ``images`` a symlink, is a file beside the link's target.
    """
    path = PurePath(relpath)
    if path.anchor:  # "/x", and on Windows also "C:x" and "\\x"
        return "is absolute"
    if ".." in path.parts:
        return "climbs out with '..'"
    if "\0" in relpath:
        return "holds a NUL character"
    return "" if path.parts else "names no file"


def _outside_caller() -> int:
    """The ``stacklevel`` (for the function calling this) of the first frame outside this package,
    so that warnings point at the user's ``triplets()`` / ``gallery()`` call."""
    here = os.path.dirname(__file__)
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.dirname(frame.f_code.co_filename) == here:
        frame, level = frame.f_back, level + 1
    return level


class DatasetReader:
    """Base of the readers: checks the root folder, parses each JSON file once, lists each image
    folder once, and applies the ``on_missing`` policy to images that are listed but absent.

    ``missing`` maps a listing file (path relative to the root) to the image names that were
    dropped from it under ``on_missing="skip"``.
    """

    DATASET: ClassVar[str]
    MARKERS: ClassVar[tuple[str, ...]]  # relative paths that exist in a correct root
    LAYOUT: ClassVar[str]  # what the root holds, for messages

    def __init__(self, root: str | os.PathLike, on_missing: OnMissing = "error") -> None:
        if on_missing not in ("error", "skip"):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        self.root = Path(root).expanduser()
        self.on_missing = on_missing
        self.missing: dict[str, tuple[str, ...]] = {}
        self._parsed: dict[Path, Any] = {}
        self._listings: dict[Path, frozenset[str]] = {}
        self._results: dict[tuple, list] = {}
        self._check_root()

    def _looks_right(self, folder: Path) -> bool:
        return all((folder / marker).is_dir() for marker in self.MARKERS)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            problem = "is not a folder" if self.root.exists() else "folder does not exist"
            raise DatasetError(self.root, problem, f"pass the {self.DATASET} root, the folder that holds {self.LAYOUT}")
        if self._looks_right(self.root):
            return
        absent = ", ".join(m + "/" for m in self.MARKERS if not (self.root / m).is_dir())
        better = self._suggest_root()
        fix = (f"pass root='{better}' instead: that folder has the {self.DATASET} layout" if better
               else f"pass the {self.DATASET} root, the folder that holds {self.LAYOUT}")
        raise DatasetError(self.root, f"is not a {self.DATASET} root: {absent} not found in it", fix)

    def _suggest_root(self) -> Path | None:
        """The parent or a child of a wrong root that has the expected layout, if any."""
        with os.scandir(self.root) as entries:
            children = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
        return next((c for c in [self.root.resolve().parent, *children] if self._looks_right(c)), None)

    def _json(self, path: Path, kind: type, what: str,
              check: Callable[[Path, Any], Any] | None = None) -> Any:
        """Parse ``path`` once per reader, check its top-level type and, once, ``check(path, data)``."""
        if path not in self._parsed:
            fix = (f"check that {self.root} is the complete {self.DATASET} root, the folder that holds "
                   f"{self.LAYOUT}; this file comes with the official release")
            data = expect(load_json(path, what, fix), kind, path, what)
            self._parsed[path] = check(path, data) if check else data
        return self._parsed[path]

    def _contained(self, relpath: str, listing: Path, record: str | None) -> str:
        """``relpath`` itself if it stays inside the root (see :func:`escape`); else a DatasetError naming
        ``listing`` and ``record``. Readers call it once per listing file, when they parse it."""
        problem = escape(relpath)
        if problem:
            raise DatasetError(listing, f"image path {relpath!r} {problem}; image paths must stay inside the "
                                        f"dataset root {self.root}", "list every image by a path relative to the "
                               "root, without '..'; to keep images on another disk, symlink their folder into the root",
                               record=record)
        return relpath

    def _cached(self, key: tuple, build: Callable[[], list[T]]) -> list[T]:
        """Build a result once per reader (so warnings are not repeated); hand out copies."""
        if key not in self._results:
            self._results[key] = build()
        return list(self._results[key])

    def _files_in(self, directory: Path) -> frozenset[str]:
        """File names in a directory, listed once per reader; empty if the directory is absent."""
        if directory not in self._listings:
            try:
                with os.scandir(directory) as entries:
                    self._listings[directory] = frozenset(e.name for e in entries)
            except (FileNotFoundError, NotADirectoryError):
                self._listings[directory] = frozenset()
        return self._listings[directory]

    def _drop_missing(self, listing: Path, items: list[T], needed: Callable[[T], Iterable[str]],
                      present: Callable[[str], bool], what: str, hint: Callable[[list[str]], str]) -> list[T]:
        """Keep the items whose needed images are all present; report the rest per ``on_missing``.

        ``what`` names the items ("queries", "gallery images"); ``hint(missing)`` adds where the
        images were expected, for the message.
        """
        absent: dict[str, None] = {}
        kept = []
        for item in items:
            gone = [name for name in needed(item) if not present(name)]
            absent.update(dict.fromkeys(gone))
            if not gone:
                kept.append(item)
        if not absent:
            return kept
        names = list(absent)
        where = f"{len(names)} image(s) it lists are not on disk ({preview(names)}){hint(names)}"
        dropped = len(items) - len(kept)
        if self.on_missing == "error":
            raise DatasetError(listing, f"{where}; {dropped} of its {len(items)} {what} need them",
                               f"re-download the missing images, or skip the affected {what} (reported in the "
                               "results): --on-missing skip on the command line, on_missing: skip in a config, "
                               "on_missing='skip' in Python")
        self.missing[listing.relative_to(self.root).as_posix()] = tuple(names)
        warnings.warn(f"{listing}: {where}; dropped {dropped} of {len(items)} {what}",
                      MissingImagesWarning, stacklevel=_outside_caller())
        return kept

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, on_missing={self.on_missing!r})"
