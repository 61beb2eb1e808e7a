"""Training run folders: one job at a time, never silently replaced, resumable wherever the run moves.

Every trainer (``train_fusion`` / ``run_fusion_job``, ``pretrain``, the inversion jobs) names the files it
writes in a :class:`RunLayout` and holds its folder with :func:`open_run` for the whole job:

* the folder is locked (:func:`cirlib.util.locks.folder_lock`, no waiting), so a second job into it stops at once
  with a one-line :class:`~cirlib.util.errors.BusyError` instead of mixing its files with the first one's. Under
  torchrun only the main process locks and checks the folder: it alone writes there;
* a folder that holds a run is refused, with what it holds ("a finished run, epoch 10 of 10", "an unfinished
  run at step 400 of 2000") and the fix, unless the job resumes it (``resume=True``: an unfinished run
  continues, a finished one is reused as is) or replaces it (``overwrite=True``: the trainer's own files, by
  their names in the layout, are deleted first; any other file in the folder stays);
* a folder that holds other files only is refused either way: cirlib starts no run among files it did not write;
* a resumed run must have its checkpoint's config, up to :data:`IGNORED_FIELDS`; a damaged checkpoint is a
  one-line FileError (:mod:`cirlib.train.checkpoint` checks every byte).

The trainers save the checkpoint that marks a run finished after every other file of the run, so a finished
checkpoint vouches for the logs and exports beside it and a resume of a finished run writes nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cirlib.train.checkpoint import read_checkpoint, read_record
from cirlib.util.atomic import remove_written, temporary_target
from cirlib.util.errors import CirlibError, FileError
from cirlib.util.locks import LOCK_NAME, folder_lock

IGNORED_FIELDS = frozenset({"out", "device", "cache", "workers"})
"""Config fields a resumed run may change, because they say where and how a run is computed, not what:
``out`` (the run folder, however it is spelled: relative, absolute, through a link), ``device`` (a run
started on the CPU may finish on a GPU; float rounding then differs, the run's definition does not),
``cache`` (where encoder features are cached) and ``workers`` (how many processes render). Every other
field must equal the one in the checkpoint."""

OTHERS_SHOWN = 5  # foreign file names listed in a refusal


@dataclass(frozen=True)
class RunLayout:
    """What one trainer writes in its run folder, and how its checkpoint records progress."""

    trainer: str            # names the job in messages, e.g. "fusion training"
    checkpoint: str         # the checkpoint a resume continues from; its record holds ``unit`` and ``config``
    unit: str               # the record's progress count, "epoch" or "step"; the total is "<unit>s"
    files: tuple[str, ...]  # every file the trainer writes (the checkpoint too), relative to the run folder

    def progress(self, record: dict) -> tuple[int, int]:
        """(done, total) of the run a checkpoint record describes (the total from its config if not recorded)."""
        total = f"{self.unit}s"
        return record[self.unit], record.get(total, record["config"].get(total))

    def finished(self, record: dict | None) -> bool:
        """Whether ``record`` (None: no checkpoint) is that of a run with nothing left to train."""
        if record is None:
            return False
        done, total = self.progress(record)
        return done >= total


def config_differences(saved: dict, current: dict) -> list[str]:
    """"field: <saved> in the run, <current> now" for every field outside IGNORED_FIELDS that differs."""
    current = json.loads(json.dumps(current))  # as the checkpoint stores it (tuples become lists)
    fields = sorted((set(saved) | set(current)) - IGNORED_FIELDS)
    return [f"{name}: {json.dumps(saved.get(name))} in the run, {json.dumps(current.get(name))} now"
            for name in fields if saved.get(name) != current.get(name)]


def _is_ours(name: str, layout: RunLayout) -> bool:
    """Whether a top-level entry of a run folder is one the trainer writes (or its lock, or a temporary file)."""
    tops = {Path(file).parts[0] for file in layout.files}
    return name == LOCK_NAME or name in tops or temporary_target(name) in tops


def _contents(folder: Path, layout: RunLayout) -> tuple[list[str], list[str]]:
    """(the trainer's files, other entries) at the top of ``folder``, sorted; the lock file counts as neither."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    ours = [n for n in names if n != LOCK_NAME and _is_ours(n, layout)]
    return ours, [n for n in names if not _is_ours(n, layout)]


def _refuse_foreign(folder: Path, layout: RunLayout) -> None:
    """Refuse a folder that is not a directory, or that holds files but none of this trainer's."""
    if folder.exists() and not folder.is_dir():
        raise FileError(folder, "is a file, not a run folder", "choose a folder for --out")
    ours, others = _contents(folder, layout)
    if others and not ours:
        shown = ", ".join(others[:OTHERS_SHOWN]) + (", ..." if len(others) > OTHERS_SHOWN else "")
        raise FileError(folder, f"holds files that are not a cirlib {layout.trainer} run ({shown})",
                        "choose another --out (a new or empty folder)")


def describe(folder: Path, layout: RunLayout) -> str:
    """What the run in ``folder`` is: "a finished run, epoch 10 of 10", "an unfinished run at step 400 of 2000"."""
    path = folder / layout.checkpoint
    if not path.exists():
        return "an unfinished run with no checkpoint yet"
    try:
        done, total = layout.progress(read_record(path, required=(layout.unit, "config")))
    except FileError as error:
        return f"a run whose {layout.checkpoint} cannot be read ({error.problem})"
    return f"a finished run, {layout.unit} {done} of {total}" if done >= total else \
        f"an unfinished run at {layout.unit} {done} of {total}"


def remove_run(folder: Path, layout: RunLayout) -> None:
    """Delete the trainer's files (and its temporary files) by name; subfolders go only if that empties them."""
    remove_written(folder, [folder / name for name in layout.files])


def _claim(folder: Path, layout: RunLayout, resume: bool, overwrite: bool) -> None:
    """Refuse, clear or keep what ``folder`` holds, before the job writes there (module docstring)."""
    _refuse_foreign(folder, layout)
    if not _contents(folder, layout)[0] or resume:
        return
    held = describe(folder, layout)
    if not overwrite:
        raise FileError(folder, f"holds {held}", "pass --resume to continue it (a finished run is reused as is), "
                        "--overwrite to replace it, or choose another --out")
    remove_run(folder, layout)
    print(f"{folder}: removed {held} (--overwrite); other files there are kept", flush=True)


def resume_record(folder: Path, layout: RunLayout, config: dict) -> dict | None:
    """The record of the checkpoint in ``folder`` to continue from, checked (every byte, and the config up to
    IGNORED_FIELDS); None when there is no checkpoint yet."""
    path = folder / layout.checkpoint
    if not path.exists():
        return None
    _, _, record = read_checkpoint(path, required=(layout.unit, "config"))
    differing = config_differences(record["config"], config)
    if differing:
        raise FileError(path, f"was written with another config ({'; '.join(differing)})",
                        f"resume with the run's config (only {', '.join(sorted(IGNORED_FIELDS))} may change), "
                        "or pass --overwrite to replace the run, or choose another --out")
    return record


def _announce(folder: Path, layout: RunLayout, record: dict) -> None:
    done, total = layout.progress(record)
    state = "the run was already complete and is reused as is" if done >= total else "continuing"
    print(f"resumed after {layout.unit} {done} of {total} from {folder / layout.checkpoint}: {state}", flush=True)


@contextlib.contextmanager
def open_run(out: Path | str, layout: RunLayout, config: dict, resume: bool, overwrite: bool,
             main: bool = True, verbose: bool = True) -> Iterator[dict | None]:
    """Hold the run folder ``out`` for the job in the ``with`` block (module docstring); yield the checked record
    of the checkpoint to continue from, or None to start afresh. ``main``: False on torchrun's other processes,
    which only read the checkpoint. ``verbose``: say when a run is resumed (False: a notebook's quiet reuse)."""
    folder = Path(out)
    if resume and overwrite:
        raise CirlibError(f"{folder}: --resume continues the run there and --overwrite replaces it. Fix: pass one "
                          "of them")
    if not main:
        yield resume_record(folder, layout, config) if resume else None
        return
    _refuse_foreign(folder, layout)  # before the lock file is created in someone else's folder
    with folder_lock(folder, "the training run", wait=False):
        _claim(folder, layout, resume, overwrite)
        previous = resume_record(folder, layout, config) if resume else None
        if previous is not None and verbose:
            _announce(folder, layout, previous)
        yield previous
