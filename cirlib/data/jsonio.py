"""Shared machinery of the dataset readers: JSON loading, field validation, image-presence checks.

Every problem becomes one :class:`DatasetError` that names the file, the record and the fix, so the
three readers validate the same way without copying code. Images are checked against one
``os.scandir`` listing per directory (FashionIQ has ~77k images; a stat per image would be slow).
Every image path a listing file gives is checked once, when the file is parsed, to stay inside the
dataset root (:func:`escape` says why one would not).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import Any, ClassVar, Literal, TypeVar

from cirlib.data.errors import DatasetError

OnMissing = Literal["error", "skip"]
T = TypeVar("T")

PREVIEW = 5  # how many missing names a message shows
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
_PLURALS = {str: "strings", int: "integers", float: "numbers"}


class MissingImagesWarning(UserWarning):
    """Images listed by a dataset file are not on disk and the affected entries were dropped."""


def kind_name(kind: type) -> str:
    """Human name of a JSON type, as used in messages ("an integer")."""
    return _KIND_NAMES[kind]


def value_kind(value: Any) -> str:
    """Human name of the JSON type a value actually has."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in _KIND_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def matches(value: Any, kind: type) -> bool:
    """JSON-aware isinstance: booleans are not integers, integers are numbers."""
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def preview(names: Sequence[str]) -> str:
    """The first few names, comma-separated, with a count of the rest."""
    shown = ", ".join(names[:PREVIEW])
    return shown + (f", ... ({len(names) - PREVIEW} more)" if len(names) > PREVIEW else "")


def load_json(path: Path, what: str, fix: str) -> Any:
    """Parse a JSON file; a missing file or invalid JSON becomes a DatasetError.

    ``what`` says what the file is ("the CIRR val caption file"); ``fix`` is the advice for a missing file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(path, f"file not found; it should be {what}", fix) from None
    except UnicodeDecodeError as err:
        raise DatasetError(path, f"is not UTF-8 text ({err.reason} at byte {err.start})",
                           "re-download the file: it is damaged or not a JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"invalid JSON at line {err.lineno}, column {err.colno} ({err.msg})",
                           "re-download the file: it is truncated or was edited by hand") from None


def expect(data: Any, kind: type, path: Path, what: str) -> Any:
    """Check the top-level type of a parsed file."""
    if not matches(data, kind):
        raise DatasetError(path, f"the top level is {value_kind(data)}, expected {kind_name(kind)} ({what})",
                           "point the reader at the official, unmodified file")
    return data


def check_names(path: Path, data: list) -> list[str]:
    """Check that every item of a top-level list is a string (a list of image names)."""
    for index, item in enumerate(data):
        if not isinstance(item, str):
            raise DatasetError(path, f"is {value_kind(item)}, expected an image name (a string)",
                               "re-download the file from the official release", record=str(index))
    return data


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


class Record:
    """One JSON object of a list file, with its position, so that errors point at it.

    ``label`` reads "12 (pairid 4031)": the 0-based index in the list, then the record's id
    (``None`` for a file's top-level object). Nested objects (CIRR's ``img_set``) are read
    through :meth:`sub`, which keeps the label.
    """

    def __init__(self, path: Path, label: str | None, raw: dict, prefix: str = "") -> None:
        self.path, self.label, self.raw, self.prefix = path, label, raw, prefix

    def error(self, problem: str, fix: str) -> DatasetError:
        """A DatasetError pointing at this record."""
        return DatasetError(self.path, problem, fix, record=self.label)

    def _field_error(self, name: str, problem: str, expected: str) -> DatasetError:
        return self.error(f'field "{self.prefix}{name}" {problem}, expected {expected}',
                          f"re-download {self.path.name} from the official release (every record has "
                          f'"{self.prefix}{name}" as {expected}) or correct this record')

    def get(self, name: str, kind: type, required: bool = True) -> Any:
        """The field's value, type-checked; ``None`` for an absent optional field."""
        if name not in self.raw:
            if required:
                raise self._field_error(name, "is missing", kind_name(kind))
            return None
        value = self.raw[name]
        if not matches(value, kind):
            raise self._field_error(name, f"is {value_kind(value)}", kind_name(kind))
        return float(value) if kind is float else value

    def get_list(self, name: str, item_kind: type, required: bool = True) -> tuple | None:
        """A list field whose items all have ``item_kind``, as a tuple."""
        expected = f"a list of {_PLURALS[item_kind]}"
        value = self.get(name, list, required)
        if value is None:
            return None
        for i, item in enumerate(value):
            if not matches(item, item_kind):
                raise self._field_error(f"{name}[{i}]", f"is {value_kind(item)}",
                                        f"{kind_name(item_kind)} ({expected})")
        return tuple(float(v) if item_kind is float else v for v in value)

    def get_map(self, name: str, item_kind: type) -> dict:
        """An object field whose values all have ``item_kind``."""
        value = self.get(name, dict)
        for key, item in value.items():
            if not matches(item, item_kind):
                raise self._field_error(f'{name}["{key}"]', f"is {value_kind(item)}", kind_name(item_kind))
        return {k: float(v) if item_kind is float else v for k, v in value.items()}

    def sub(self, name: str) -> Record:
        """A nested object field, read as a Record with the same label."""
        return Record(self.path, self.label, self.get(name, dict), f"{self.prefix}{name}.")


def iter_records(data: list, path: Path, id_field: str | None = None) -> Iterator[Record]:
    """Yield each item of a list file as a Record; an item that is not an object is an error."""
    for index, raw in enumerate(data):
        ident = raw.get(id_field) if isinstance(raw, dict) and id_field else None
        label = f"{index} ({id_field} {ident})" if isinstance(ident, (str, int)) else str(index)
        if not isinstance(raw, dict):
            raise DatasetError(path, f"is {value_kind(raw)}, expected an object",
                               "re-download the file from the official release", record=label)
        yield Record(path, label, raw)


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
