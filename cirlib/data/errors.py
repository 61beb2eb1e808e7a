"""One error type for every problem with a dataset on disk.

The message always names the file, the record (when there is one) and the fix, so a user who
points a reader at the wrong folder learns in one line what to do.
"""

from __future__ import annotations

from cirlib.util.errors import FileError


class DatasetError(FileError):
    """A dataset file is missing, malformed, or refers to something that is not there."""
