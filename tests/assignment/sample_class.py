"""The fixture course of the assignment tests: its instructor notebook, its release, and students' submissions
made from the released notebook the way students make them (answers typed into the stubs, cells edited)."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from cirlib.assignment.markup import nbgrader
from cirlib.assignment.release import release

HERE = Path(__file__).resolve().parent
INSTRUCTOR = HERE / "fixture_notebook.py"
NAME = "fixture_notebook.ipynb"

TOP1 = "def top1_index(scores):\n    return scores.argmax(dim=1)\n"
TOP1_LAST_TIE = "def top1_index(scores):\n    return scores.shape[1] - 1 - scores.flip(1).argmax(dim=1)\n"
L2 = "def l2_normalise(vectors):\n    return torch.nn.functional.normalize(vectors, dim=-1)\n"
L2_BY_SUM = "def l2_normalise(vectors):\n    return vectors / vectors.sum(dim=-1, keepdim=True)\n"
ANSWER = "Without a rule, tied targets land before or after by accident."


def released(out: Path) -> nbformat.NotebookNode:
    """Release the fixture notebook into ``out``; return the student notebook."""
    release([INSTRUCTOR], out)
    return nbformat.read(out / NAME, as_version=4)


def cell(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """The (first) cell of ``notebook`` with ``grade_id``."""
    return next(c for c in notebook.cells if nbgrader(c).get("grade_id") == grade_id)


def answered(student: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the released notebook with the sources of the cells ``answers`` names replaced."""
    notebook = copy.deepcopy(student)
    for grade_id, source in answers.items():
        cell(notebook, grade_id).source = source
    return notebook


def submit(folder: Path, student: str, notebook: nbformat.NotebookNode) -> None:
    """Put ``notebook`` into ``folder``/``student``/ under the released name."""
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / student / NAME)


def broken_cells(student: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Correct answers in cells a student broke: top1_index's metadata deleted, l2_normalise's cell duplicated
    (a wrong first copy, the right answer in the later one)."""
    notebook = answered(student, {"top1_index": TOP1, "l2_normalise": L2_BY_SUM, "q_ties": ANSWER})
    del cell(notebook, "top1_index").metadata["nbgrader"]
    first = cell(notebook, "l2_normalise")
    later = copy.deepcopy(first)
    later.source, later.id = L2, "copied-cell"
    notebook.cells.insert(notebook.cells.index(first) + 1, later)
    return notebook


def sample_class(folder: Path, student: nbformat.NotebookNode) -> None:
    """The four submissions of the sample class into ``folder``."""
    submit(folder, "a_correct", answered(student, {"top1_index": TOP1, "l2_normalise": L2, "q_ties": ANSWER}))
    # Wrong only on the hidden tied cases, with the student's own check cell emptied and `check` replaced.
    submit(folder, "b_partly_wrong", answered(student, {
        "top1_index": TOP1_LAST_TIE + "\n\ncheck = lambda *args, **kwargs: None\n", "top1_index_check": "pass",
        "l2_normalise": L2}))
    submit(folder, "c_broken_cells", broken_cells(student))
    crash = "import os\n\n\ndef top1_index(scores):\n    os._exit(1)\n"
    submit(folder, "d_crash", answered(student, {"top1_index": crash, "l2_normalise": L2}))
