"""One error type for every problem with a dataset on disk.

The message always names the file, the record (when there is one) and the fix, so a user who
points a reader at the wrong folder learns in one line what to do.
"""

from __future__ import annotations

from pathlib import Path


class DatasetError(Exception):
    """A dataset file is missing, malformed, or refers to something that is not there."""

    def __init__(self, path: Path | str, problem: str, fix: str, record: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        self.record = record
        where = f"{self.path}" + (f", record {record}" if record is not None else "")
        super().__init__(f"{where}: {problem}. Fix: {fix}")
