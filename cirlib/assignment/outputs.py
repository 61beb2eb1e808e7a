"""Output folders of `cirlib assignment release` and `grade`: written only where cirlib wrote before.

Each folder holds a record (release: manifest.json, grade: grading.json) whose "files" lists what the command
wrote. A folder is accepted when it is new, empty, or holds only its record, the files the record lists and
cirlib's lock; a rerun deletes the files of the last run that it does not write again, so the same input always
leaves the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from cirlib.util.atomic import remove_written, temporary_target, write_bytes
from cirlib.util.errors import FileError
from cirlib.util.locks import LOCK_NAME

FORMAT = "cirlib-assignment"


def json_bytes(data: object) -> bytes:
    """Canonical JSON (sorted keys, two-space indent, UTF-8, trailing newline): same data, same bytes."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _present(out: Path) -> list[str]:
    """The files under ``out`` (relative, POSIX), less the lock and the temporaries of interrupted writes."""
    return sorted(path.relative_to(out).as_posix() for path in out.rglob("*")
                  if not path.is_dir() and path.name != LOCK_NAME and temporary_target(path.name) is None)


def _previous(out: Path, record: str) -> list[str]:
    """The files the last run listed in its record ([] for a new or empty folder); refuses any other content."""
    present = _present(out) if out.is_dir() else []
    if not present:
        return []
    fix = "choose a new or empty --out folder (cirlib never overwrites files it did not write)"
    try:
        listed = json.loads((out / record).read_text(encoding="utf-8"))
        written = listed["files"] if listed.get("format") == FORMAT else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        written = None
    if not isinstance(written, list):
        raise FileError(out, f"holds files that cirlib did not write here (no {record} of this command)", fix)
    strangers = sorted(set(present) - set(written) - {record})
    if strangers:
        raise FileError(out, f"holds {len(strangers)} file(s) that cirlib did not write, e.g. {strangers[0]}", fix)
    return [name for name in written if isinstance(name, str)]


class OwnedFolder:
    """An output folder checked at the start (before the long work) and written at the end; hold
    ``folder_lock(out, ...)`` around both."""

    def __init__(self, out: Path, record: str) -> None:
        self.out, self.record = Path(out), record
        self.previous = _previous(self.out, record)

    def write(self, record: dict, files: dict[str, bytes]) -> None:
        """Write ``files`` ({relative name: bytes}) and the record (``record`` plus "format" and "files")
        atomically, then delete the last run's files that were not written again."""
        for name, data in sorted(files.items()):
            write_bytes(self.out / name, data)
        write_bytes(self.out / self.record, json_bytes({**record, "format": FORMAT, "files": sorted(files)}))
        stale = [self.out / name for name in self.previous if name not in files and name != self.record]
        remove_written(self.out, [path for path in stale if path.resolve().is_relative_to(self.out.resolve())])
