"""`cirlib assignment release`: the student notebooks and their manifest, from the instructor's notebooks.

A student notebook is :func:`~cirlib.assignment.markup.student_version` of the instructor's: solutions replaced
by stubs, hidden tests deleted, outputs cleared. The manifest lists, per notebook, each graded cell's grade_id,
kind, points and the sha256 of the instructor's source, and the total points. Same input, byte-identical folder:
sorted keys, no timestamps, cell ids kept (a py:percent script's are its cells' positions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from cirlib.assignment.markup import about, read_notebook, student_version, validate
from cirlib.assignment.outputs import OwnedFolder
from cirlib.util.errors import CirlibError
from cirlib.util.locks import folder_lock

MANIFEST = "manifest.json"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"


def default_notebooks(folder: Path = Path("notebooks")) -> list[Path]:
    """The course's notebooks: ``folder``/NN_*.ipynb, in order."""
    found = sorted(Path(folder).glob(NOTEBOOK_PATTERN))
    if not found:
        raise CirlibError(f"{folder}: no {NOTEBOOK_PATTERN} notebooks. Fix: run from the repository root or name "
                          "the notebooks")
    return found


def notebook_names(notebooks: Sequence[Path]) -> list[str]:
    """The .ipynb names the notebooks are released (and submitted) under; two sources of one name are an error."""
    names = [f"{Path(path).stem}.ipynb" for path in notebooks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CirlibError(f"{repeated[0]} is given twice (an .ipynb and its script?). Fix: pass each notebook once")
    return names


def notebook_entry(notebook: object, path: Path) -> dict:
    """The manifest's entry of one instructor notebook: its graded cells and total points."""
    with about(path):
        cells = validate(notebook)
    listed = [{key: value for key, value in asdict(cell).items() if key != "index"} for cell in cells]
    return {"cells": listed, "points": sum(cell.points for cell in cells)}


def release(notebooks: Sequence[Path | str], out: Path | str) -> dict:
    """Write the student version of each notebook and manifest.json into ``out``; return the manifest."""
    paths, out = [Path(path) for path in notebooks], Path(out)
    import nbformat

    names = notebook_names(paths)
    manifest, files = {"notebooks": {}}, {}
    for name, path in zip(names, paths):
        notebook = read_notebook(path)
        manifest["notebooks"][name] = notebook_entry(notebook, path)
        with about(path):
            files[name] = nbformat.writes(student_version(notebook)).encode("utf-8") + b"\n"
    manifest["total_points"] = sum(entry["points"] for entry in manifest["notebooks"].values())
    with folder_lock(out, "a release", wait=False):
        OwnedFolder(out, MANIFEST).write(manifest, files)
    return manifest


def summary(manifest: dict, out: Path | str) -> str:
    """What `cirlib assignment release` prints: one line per notebook and the total."""
    lines = [f"{name}: {len(entry['cells'])} graded cells, {entry['points']:g} points"
             for name, entry in manifest["notebooks"].items()]
    return "\n".join(lines + [f"released {len(lines)} notebook(s), {manifest['total_points']:g} points, to {out} "
                              f"(manifest: {Path(out) / MANIFEST})"])
