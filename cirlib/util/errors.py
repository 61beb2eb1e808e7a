"""Errors a user can fix, each one line that names the file (or field), the problem and the fix.

``cirlib``'s command line prints any :class:`CirlibError` as that one line (exit status 2) instead of
a traceback, so every layer raises one of these for bad input, damaged files and refused actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CirlibError(Exception):
    """A problem with the user's input, files or command, with the fix in the message."""


class FileError(CirlibError):
    """A file is missing, damaged, or not what cirlib expects there."""

    def __init__(self, path: Path | str, problem: str, fix: str, record: str | None = None) -> None:
        self.path, self.problem, self.fix, self.record = Path(path), problem, fix, record
        where = f"{self.path}" + (f", record {record}" if record is not None else "")
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class ConfigError(CirlibError, ValueError):
    """A configuration field has a value of the wrong type or outside its range."""

    def __init__(self, source: str, field: str, value: Any, expected: str) -> None:
        self.source, self.field, self.value, self.expected = source, field, value, expected
        super().__init__(f"{source}: field {field!r} is {value!r}; expected {expected}")


class BusyError(CirlibError):
    """Another cirlib process is writing the same folder."""
