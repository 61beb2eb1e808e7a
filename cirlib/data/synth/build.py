"""Build the three synthetic datasets under one folder: resumable, repairable, and never destructive.

A build plans before it writes: every file it will write (each dataset's JSON files, every image, the
datacards) is known up front and listed in ``out/.building.json`` before anything else is written, so
even an interrupted build's files are known. ``out/manifest.json`` is written last and marks the
benchmark complete: the configuration, the counts, the sanity numbers and every file's size and sha256.

- Reuse: a complete benchmark with the same configuration is reused after checking every listed file's
  size (one ``stat`` each); ``verify=True`` (``cirlib synth --verify``) also checks every sha256. Missing
  or damaged files are reported, deleted (they are listed, so cirlib wrote them) and rendered again, the
  rest is kept; then every file must match the manifest, else the file is named (and, the old manifest
  being kept, it is checked again on the next run).
- Resume: a build killed at any moment resumes to byte-identical files: images on disk are kept (they
  are deterministic and written atomically) and leftover temporary files of listed files are removed. A
  manifest of an older cirlib (no file list) with the same configuration is upgraded the same way.
- Overwrite: ``overwrite=True`` replaces a benchmark of another configuration by deleting exactly the
  files its manifest and in-progress record list (paths inside ``out`` only), then the folders this
  leaves empty; files that cirlib did not write survive. Without it, another configuration is refused.
- Refusal: a non-empty folder without a cirlib record, a record that cirlib did not write (or that was
  damaged), and an older cirlib's benchmark of another configuration (its files are unknown) are refused
  with one-line errors, and nothing is deleted. A foreign folder is refused before anything, even the
  lock file, is written into it; a bad ``workers`` is refused before that.
- Concurrency: everything (ownership, reuse, repair, overwrite) is decided and done under the folder's
  lock (:func:`cirlib.util.locks.folder_lock`, queued), so two identical builds both succeed with the same
  files (the second checks and reuses the first's), and two builds never write one folder at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirlib.data.errors import DatasetError
from cirlib.data.reader import preview
from cirlib.data.synth.card import CARD_FILES, write_datacards
from cirlib.data.synth.circo import build_circo
from cirlib.data.synth.cirr import build_cirr
from cirlib.data.synth.config import SynthConfig
from cirlib.data.synth.fashioniq import build_fashioniq
from cirlib.data.synth.render import RenderJob, render_all, resolve_workers
from cirlib.util.atomic import remove_temporaries, remove_written, temporary_target, write_json
from cirlib.util.locks import LOCK_NAME, folder_lock

BUILDERS = {"synth-fashioniq": build_fashioniq, "synth-cirr": build_cirr, "synth-circo": build_circo}
MANIFEST = "manifest.json"
IN_PROGRESS = ".building.json"
RECORDS = (MANIFEST, IN_PROGRESS)
UNLISTABLE = {MANIFEST, IN_PROGRESS, LOCK_NAME}  # never deleted as a listed file
# Bump when the generator's output changes, so that data written by an older version is never reused.
GENERATOR_VERSION = 1

SanityFn = Callable[[Path, SynthConfig], dict]  # (out, config) -> the datacards' sanity numbers


@dataclass(frozen=True)
class Plan:
    """Everything one build writes, known before anything is written."""

    documents: dict[str, Any]           # path relative to out -> JSON data
    jobs: dict[str, list[RenderJob]]    # dataset -> images, paths relative to the dataset folder
    counts: dict[str, dict]
    cards: bool                         # whether the datacards are written too

    def files(self) -> list[str]:
        """Every file of the build, relative to out."""
        images = [f"{name}/{job.path}" for name, jobs in self.jobs.items() for job in jobs]
        cards = [f"{name}/{card}" for name in self.jobs for card in CARD_FILES] if self.cards else []
        return [*self.documents, *images, *cards]


def plan_benchmark(config: SynthConfig, cards: bool) -> Plan:
    """Run the three generators without writing anything."""
    documents, jobs, counts = {}, {}, {}
    for name, build in BUILDERS.items():
        dataset_documents, jobs[name], counts[name] = build(config)
        documents.update({f"{name}/{path}": data for path, data in dataset_documents.items()})
    return Plan(documents, jobs, counts, cards)


def _not_cirlibs(path: Path, problem: str) -> DatasetError:
    return DatasetError(path, f"{problem}, so it was not written by cirlib synth (or it was damaged); nothing was "
                        "deleted", "choose another --out folder (cirlib deletes only the files its own manifest lists)")


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)


def read_record(path: Path) -> dict | None:
    """A manifest or in-progress record, checked to be cirlib's; None when there is none."""
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:  # not JSON, or not UTF-8
        raise _not_cirlibs(path, "is not valid JSON") from None
    if not (isinstance(record, dict) and isinstance(record.get("config"), dict)
            and isinstance(record.get("generator"), int)):
        raise _not_cirlibs(path, "holds no configuration and generator version")
    files = record.get("files", [])
    if not (isinstance(files, list) and all(isinstance(f, str) for f in files)
            or isinstance(files, dict) and all(_is_entry(e) for e in files.values())):
        raise _not_cirlibs(path, "holds a malformed file list")
    return record


def _has_content(out: Path) -> bool:
    """Whether ``out`` holds anything besides cirlib's lock file and its records' temporary files."""
    return out.exists() and any(name != LOCK_NAME and temporary_target(name) not in RECORDS
                                for name in os.listdir(out))


def folder_records(out: Path) -> dict[str, dict]:
    """The cirlib records in ``out`` ({file name: record}); a non-empty folder with none is refused."""
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "is a file, not a folder", "choose another --out folder")
    records = {name: record for name in RECORDS if (record := read_record(out / name)) is not None}
    if not records and _has_content(out):
        raise DatasetError(out, f"is not empty and holds no {MANIFEST} or {IN_PROGRESS} of cirlib synth, so cirlib "
                           "did not create it; nothing was deleted", "choose an empty or new --out folder")
    return records


def _identity(record: dict) -> dict:
    return {**record["config"], "generator": record["generator"]}


def _owned_path(root: Path, relative: str) -> Path | None:
    """``root / relative`` resolved, when a file list may name it: inside ``root``, not a record or the lock."""
    path = (root / relative).resolve()
    if path == root or not path.is_relative_to(root) or path.name in UNLISTABLE:
        return None
    return path


def _owned_paths(out: Path, listed: Iterable[str]) -> list[Path]:
    """The listed files that cirlib may touch (see :func:`_owned_path`), resolved."""
    root = out.resolve()
    return [path for relative in listed if (path := _owned_path(root, relative)) is not None]


def remove_listed(out: Path, listed: Iterable[str]) -> int:
    """Delete the listed files inside ``out`` and their leftovers, then the folders left empty; return the count.

    Paths outside ``out``, the records and the lock file are ignored, so a file list can never make cirlib
    delete something else.
    """
    return remove_written(out.resolve(), _owned_paths(out, listed))


def file_entry(path: Path) -> dict:
    """A manifest entry: the file's size and sha256."""
    data = path.read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def damaged_files(out: Path, entries: dict[str, dict], verify: bool) -> dict[str, str]:
    """The listed files that are missing or differ from their entry: {path: what is wrong}.

    Sizes are always checked (one ``stat`` per file); ``verify`` also checks every sha256.
    """
    problems = {}
    for relative, entry in entries.items():
        try:
            size = (out / relative).stat().st_size
        except OSError:
            problems[relative] = "missing"
            continue
        if size != entry["size"]:
            problems[relative] = f"{size} bytes, expected {entry['size']}"
        elif verify and file_entry(out / relative)["sha256"] != entry["sha256"]:
            problems[relative] = "sha256 differs"
    return problems


def _describe(record: dict) -> str:
    config = record["config"]
    return (f"a benchmark built with another configuration (seed {config.get('seed')}, size {config.get('size')}, "
            f"generator {record['generator']})")


def _write_plan(out: Path, config: SynthConfig, files: list[str], sanity: dict | None = None) -> None:
    """Record, in the in-progress record, the files a build of ``config`` is about to write."""
    write_json(out / IN_PROGRESS, {"config": config.to_json(), "generator": GENERATOR_VERSION,
                                   **({"sanity": sanity} if sanity is not None else {}), "files": files})


def _without_stale(out: Path, records: dict[str, dict], config: SynthConfig, overwrite: bool) -> dict[str, dict]:
    """The records of ``config`` in ``out``; a benchmark of another configuration is refused, or deleted.

    Deleted only with ``overwrite``, by its file lists, which must exist. Its records go last, so that an
    interrupted deletion is finished by the next run.
    """
    wanted = {**config.to_json(), "generator": GENERATOR_VERSION}
    stale = [name for name, record in records.items() if _identity(record) != wanted]
    if not stale:
        return records
    what = _describe(records[stale[0]])
    if any("files" not in record for record in records.values()):
        raise DatasetError(out / stale[0], f"this folder holds {what}, written by an older cirlib that did not list "
                           "its files, so they are unknown; nothing was deleted",
                           "choose another --out folder, or remove the folder yourself")
    if not overwrite:
        raise DatasetError(out / stale[0], f"this folder holds {what}",
                           "choose another --out folder, or pass --overwrite to replace it")
    removed = remove_listed(out, [f for record in records.values() for f in record["files"]])
    _write_plan(out, config, [])
    (out / MANIFEST).unlink(missing_ok=True)
    print(f"{out}: removed the {removed} files of {what}; files that cirlib did not write are kept", flush=True)
    return {}


def _build(out: Path, config: SynthConfig, workers: int | None, sanity: dict | None,
           measure_sanity: SanityFn | None) -> dict:
    """Record the plan, write every planned file (keeping images on disk), and return the new manifest.

    The datacards are written when sanity numbers are known (from an earlier build of the same
    configuration) or can be measured. An earlier manifest of the same configuration stays until the new
    one replaces it, so a repair that is interrupted, or fails, is checked against it again.
    """
    plan = plan_benchmark(config, cards=sanity is not None or measure_sanity is not None)
    files = plan.files()
    _write_plan(out, config, files, sanity)
    remove_temporaries(_owned_paths(out, files))
    for relative, data in plan.documents.items():
        write_json(out / relative, data)
    for name, jobs in plan.jobs.items():
        render_all(jobs, out / name, config.seed, workers=workers, desc=name)
    manifest = {"config": config.to_json(), "generator": GENERATOR_VERSION, "counts": plan.counts}
    if plan.cards:
        manifest["sanity"] = sanity if sanity is not None else measure_sanity(out, config)
        write_datacards(out, manifest, manifest["sanity"])
    return {**manifest, "files": {relative: file_entry(out / relative) for relative in files}}


def _check_repaired(out: Path, expected: dict[str, dict], written: dict[str, dict]) -> None:
    """Every file of the previous manifest must come back identical (the generator is deterministic)."""
    still = [relative for relative, entry in expected.items() if written.get(relative) != entry]
    if still:
        raise DatasetError(out / still[0], f"still differs from its entry in {MANIFEST} after the repair "
                           f"({len(still)} file(s): {preview(still)})",
                           "check the disk (a file that keeps changing points at failing storage), or build into "
                           "a new --out folder")


def _build_locked(out: Path, config: SynthConfig, workers: int | None, overwrite: bool, verify: bool,
                  measure_sanity: SanityFn | None) -> dict:
    """Reuse, repair, resume or replace the benchmark in ``out``; the caller holds the folder's lock."""
    records = _without_stale(out, folder_records(out), config, overwrite)
    manifest = records.get(MANIFEST, {})
    expected = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    damaged = damaged_files(out, expected, verify)
    if expected and not damaged and IN_PROGRESS not in records and (measure_sanity is None or "sanity" in manifest):
        return manifest
    if not verify:  # the build hashes every file anyway: find every damaged one before it
        damaged = damaged_files(out, expected, verify=True)
    if damaged:
        print(f"{out / MANIFEST}: {len(damaged)} of its {len(expected)} files are missing or damaged "
              f"({preview([f'{path}: {why}' for path, why in damaged.items()])}); repairing", flush=True)
        remove_listed(out, damaged)
    result = _build(out, config, workers, manifest.get("sanity", records.get(IN_PROGRESS, {}).get("sanity")),
                    measure_sanity)
    _check_repaired(out, expected, result["files"])
    write_json(out / MANIFEST, result)
    (out / IN_PROGRESS).unlink()
    if damaged:
        print(f"{out}: repaired {len(damaged)} file(s) ({preview(list(damaged))}); every file matches {MANIFEST} again",
              flush=True)
    return result


def build_benchmark(out: Path | str, config: SynthConfig, workers: int | None = None, overwrite: bool = False,
                    verify: bool = False, measure_sanity: SanityFn | None = None) -> dict:
    """Write synth-fashioniq, synth-cirr and synth-circo under ``out``; return the manifest.

    ``verify`` checks every file's sha256 when a complete benchmark is reused (sizes are always checked).
    ``measure_sanity(out, config)`` returns the sanity numbers of the datacards (written when given).
    """
    out = Path(out)
    resolve_workers(workers)  # a bad --workers is refused before anything is written
    folder_records(out)  # a foreign folder is refused before the lock file is created in it
    with folder_lock(out, "the benchmark build", wait=True):
        return _build_locked(out, config, workers, overwrite, verify, measure_sanity)


def synth_labels(dataset_root: Path | str) -> dict[str, dict]:
    """Attribute labels of a synthetic dataset's images: {image name (CIRCO: id) -> attributes}."""
    meta = Path(dataset_root) / "synth_meta"
    path = meta / "attributes.json" if (meta / "attributes.json").exists() else meta / "scenes.json"
    return json.loads(path.read_text())
