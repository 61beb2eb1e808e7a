"""The exercise markup (nbgrader's conventions) in notebooks and their py:percent twins.

A graded cell carries ``metadata.nbgrader`` with a ``grade_id`` and the flags ``solution``, ``grade`` and
``locked``: a solution cell (``solution``) is where the student writes a function named like its grade_id or a
markdown answer (with ``grade`` too: a manually graded answer); a test cell (``grade``, not ``solution``) checks
it for its ``points``; a locked cell (only ``locked``) is setup code the checks need. ``### BEGIN SOLUTION`` /
``### END SOLUTION`` mark what the student version replaces by a stub, ``### BEGIN HIDDEN TESTS`` / ``### END
HIDDEN TESTS`` what it deletes (the grader puts the instructor's test cells back whole).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from cirlib.util.errors import CirlibError, FileError

SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_TESTS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)
KINDS = ("setup", "solution", "tests", "manual")
"""setup: locked code the checks need; solution: an autograded answer; tests: a check; manual: graded by hand."""


class MarkupError(CirlibError):
    """A notebook's markup is broken; :func:`about` names the file."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


@contextlib.contextmanager
def about(path: Path | str) -> Iterator[None]:
    """Turn a :class:`MarkupError` raised in the block into a one-line :class:`FileError` naming ``path``."""
    try:
        yield
    except MarkupError as error:
        raise FileError(path, error.problem, error.fix) from None


@dataclass(frozen=True)
class GradedCell:
    """One cell with nbgrader metadata, as the release manifest lists it."""

    grade_id: str
    kind: str  # one of KINDS
    points: float  # 0 unless kind is tests or manual
    sha256: str  # of the cell's source (the instructor's, in a manifest)
    index: int  # position in the notebook


def read_notebook(path: Path | str) -> Any:
    """A notebook (nbformat v4) from an .ipynb file or a py:percent script; a script's cells get ids from their
    position (jupytext draws random ones), so the same script gives the same notebook."""
    path = Path(path)
    if not path.is_file():
        raise FileError(path, "no such notebook", "pass an .ipynb notebook or its py:percent script")
    try:
        if path.suffix == ".py":
            import jupytext

            notebook = jupytext.read(path)
            for index, cell in enumerate(notebook.cells):
                cell["id"] = f"cell-{index}"
            return notebook
        import nbformat

        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)  # a student's hand-edited file: cells without a source stop here
        return notebook
    except (OSError, ValueError, KeyError, TypeError, nbformat_errors()) as error:  # JSON, schema, permission
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise FileError(path, f"not a readable notebook ({first})", "restore it from a copy or export it again from "
                        "Jupyter") from None


def nbformat_errors() -> type[Exception]:
    """nbformat's validation error (jsonschema's, not a ValueError)."""
    from nbformat import ValidationError

    return ValidationError


def nbgrader(cell: Any) -> dict:
    """The cell's nbgrader metadata ({} when absent or not a mapping)."""
    value = cell.get("metadata", {}).get("nbgrader")
    return value if isinstance(value, dict) else {}


def cell_kind(cell: Any) -> str | None:
    """The cell's kind (:data:`KINDS`) from its nbgrader flags; None for a cell outside the markup."""
    flags = nbgrader(cell)
    solution, grade, task = (bool(flags.get(name)) for name in ("solution", "grade", "task"))
    if task or (solution and grade):
        return "manual"
    if solution:
        return "solution"
    if grade:
        return "tests"
    if flags.get("locked") and flags.get("grade_id") and cell.get("cell_type") == "code":
        return "setup"
    return None


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _points(cell: Any, kind: str, grade_id: str) -> float:
    if kind not in ("tests", "manual"):
        return 0
    points = nbgrader(cell).get("points", 0)
    if isinstance(points, bool) or not isinstance(points, Real) or points < 0:
        raise MarkupError(f"cell {grade_id!r} has points {json.dumps(points)}", "give it a number >= 0")
    return points


def _marked(notebook: Any) -> Iterator[tuple[int, Any, str, Any]]:
    """(index, cell, kind, grade_id as found) of each cell with an nbgrader kind."""
    for index, cell in enumerate(notebook.cells):
        kind = cell_kind(cell)
        if kind is not None:
            yield index, cell, kind, nbgrader(cell).get("grade_id")


def graded_cells(notebook: Any) -> list[GradedCell]:
    """The notebook's graded cells, in order. Lenient, for students' notebooks too: a cell without a grade_id is
    skipped and a repeated grade_id (a duplicated cell) listed at its first cell; :func:`validate` refuses both."""
    found, seen = [], set()
    for index, cell, kind, grade_id in _marked(notebook):
        if isinstance(grade_id, str) and grade_id and grade_id not in seen:
            seen.add(grade_id)
            found.append(GradedCell(grade_id, kind, _points(cell, kind, grade_id), source_sha256(cell.source), index))
    return found


def defines(source: str, name: str) -> bool:
    """Whether ``source`` defines the top-level function ``name``."""
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", source, re.MULTILINE) is not None


def validate(notebook: Any) -> list[GradedCell]:
    """:func:`graded_cells` of an instructor's notebook, checked for the rules the grader relies on: some graded
    cell, each with its own grade_id; each code solution cell defines the function its grade_id names; the BEGIN/END
    markers pair up."""
    seen: set[str] = set()
    for index, _, kind, grade_id in _marked(notebook):
        if not isinstance(grade_id, str) or not grade_id:
            raise MarkupError(f"cell {index} ({kind}) has no grade_id", "set metadata.nbgrader.grade_id")
        if grade_id in seen:
            raise MarkupError(f"grade_id {grade_id!r} is used by two cells", "give every graded cell its own grade_id")
        seen.add(grade_id)
    cells = graded_cells(notebook)
    if not cells:
        raise MarkupError("no graded cells (cells with metadata.nbgrader)", "mark the exercises as docs/teaching.md "
                          "describes")
    for graded in cells:
        cell = notebook.cells[graded.index]
        if graded.kind == "solution" and cell.cell_type == "code" and not defines(cell.source, graded.grade_id):
            raise MarkupError(f"solution cell {graded.grade_id!r} defines no function {graded.grade_id}()",
                              "name the function like the cell's grade_id")
    student_version(notebook)  # raises on unpaired markers
    return cells


def _replace_regions(source: str, markers: tuple[str, str], stub: Callable[[str], list[str]], where: str) -> str:
    """``source`` with each region from the line holding ``markers[0]`` to the one holding ``markers[1]`` (both
    included) replaced by ``stub(indentation of the first line)``."""
    begin, end = markers
    lines, out, indent = source.split("\n"), [], None
    for line in lines:
        if begin in line:
            if indent is not None:
                raise MarkupError(f"{where}: {begin!r} inside another one", f"close the first with {end!r}")
            indent = line[:len(line) - len(line.lstrip())]
        elif end in line:
            if indent is None:
                raise MarkupError(f"{where}: {end!r} without {begin!r}", f"add {begin!r} above it or delete it")
            out.extend(stub(indent))
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise MarkupError(f"{where}: {begin!r} without {end!r}", f"add {end!r} after the region")
    return "\n".join(out)


def _stub_source(cell: Any, where: str) -> str:
    """A solution cell's student source: its solution regions (the whole cell if it has none) as stubs."""
    stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    if not any(marker in cell.source for marker in SOLUTION):
        return "\n".join(stub)
    return _replace_regions(cell.source, SOLUTION, lambda indent: [indent + line for line in stub], where)


def student_version(notebook: Any) -> Any:
    """A copy for students: solutions replaced by stubs, hidden tests deleted, outputs and execution counts
    cleared, and the instructor's jupytext pairing dropped."""
    student = copy.deepcopy(notebook)
    student.metadata.pop("jupytext", None)
    for index, cell in enumerate(student.cells):
        where = f"cell {index}" + (f" ({nbgrader(cell)['grade_id']!r})" if nbgrader(cell).get("grade_id") else "")
        if cell_kind(cell) in ("solution", "manual") and nbgrader(cell).get("solution"):
            cell.source = _stub_source(cell, where)
        cell.source = _replace_regions(cell.source, HIDDEN_TESTS, lambda indent: [], where)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def solution_functions(path: Path | str) -> dict[str, Callable[..., Any]]:
    """{grade_id: function} of a notebook's code solution cells, executed after its setup cells in a fresh
    namespace (the tests of the exercise modules check the notebooks' own solutions with it)."""
    notebook = read_notebook(path)
    with about(path):
        cells = graded_cells(notebook)
    namespace: dict[str, Any] = {"__name__": f"solutions_of_{Path(path).stem}"}
    for graded in cells:
        cell = notebook.cells[graded.index]
        if graded.kind in ("setup", "solution") and cell.cell_type == "code":
            exec(compile(cell.source, f"<{Path(path).name}: {graded.grade_id}>", "exec"), namespace)
    return {graded.grade_id: namespace[graded.grade_id] for graded in cells
            if graded.kind == "solution" and notebook.cells[graded.index].cell_type == "code"
            and callable(namespace.get(graded.grade_id))}


def answer_cells(submission: Any, instructor: Any) -> dict[str, Any | None]:
    """{grade_id: the student's cell, or None when missing} for each answer the instructor's notebook asks for
    (solution and manual cells). The answer is the LAST cell that carries the grade_id or, for code, defines the
    function of that name: what the student's notebook would use when run from the top, even when the metadata
    was deleted or the cell duplicated."""
    answers = {}
    for graded in graded_cells(instructor):
        if graded.kind not in ("solution", "manual"):
            continue
        code = instructor.cells[graded.index].cell_type == "code"
        found = [cell for cell in submission.cells
                 if nbgrader(cell).get("grade_id") == graded.grade_id
                 or (code and cell.cell_type == "code" and defines(cell.source, graded.grade_id))]
        answers[graded.grade_id] = found[-1] if found else None
    return answers
