"""Folder locks, so that two cirlib processes never write one benchmark, run or cache entry at once.

A lock is an advisory OS lock (``filelock``: ``flock`` on POSIX) on a small file inside the folder; the OS
drops it when its process ends, however it ends, so a killed job never leaves a stale lock behind.
``wait=True`` queues behind the holder (two identical builds: the second finds the first's result);
``wait=False`` refuses at once with a :class:`~cirlib.util.errors.BusyError` naming the folder.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from cirlib.util.atomic import default_file_mode
from cirlib.util.errors import BusyError

LOCK_NAME = ".cirlib.lock"


@contextlib.contextmanager
def folder_lock(folder: Path | str, what: str, wait: bool) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if needed) for the ``with`` block.

    ``what`` names the job in messages ("the benchmark build", "the training run").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME), mode=default_file_mode())
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise BusyError(f"{folder}: another cirlib process is writing {what} here. Fix: wait for it to "
                            "finish, or choose another folder") from None
        print(f"waiting for another cirlib process writing {what} in {folder} ...", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield folder
    finally:
        lock.release()
