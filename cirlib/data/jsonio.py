"""JSON loading and field validation shared by the dataset readers.

Every problem becomes one :class:`DatasetError` that names the file, the record and the fix, so the
readers validate the same way without copying code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cirlib.data.errors import DatasetError

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
_PLURALS = {str: "strings", int: "integers", float: "numbers"}


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
