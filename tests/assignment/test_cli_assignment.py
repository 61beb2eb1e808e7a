"""`cirlib assignment release|check|grade` on the command line: output, exit status, one-line errors."""

from __future__ import annotations

import nbformat

from cirlib.cli import main
from tests.assignment.sample_class import HERE, INSTRUCTOR, NAME, TOP1, answered, cell, released

new = nbformat.v4


def graded(cell_maker, source: str, grade_id: str, **flags) -> nbformat.NotebookNode:
    """A cell with nbgrader metadata (the flags default to False)."""
    metadata = {"grade_id": grade_id, "schema_version": 3, **{flag: False for flag in
                                                                 ("grade", "locked", "solution", "task")}, **flags}
    return cell_maker(source, metadata={"nbgrader": metadata})


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_release_prints_what_it_released(tmp_path, capsys):
    assert main(["assignment", "release", str(INSTRUCTOR), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{NAME}: 6 graded cells, 4 points",
        f"released 1 notebook(s), 4 points, to {tmp_path / 'out'} (manifest: {tmp_path / 'out' / 'manifest.json'})"]


def test_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    broken = tmp_path / "01_broken.py"
    broken.write_text(INSTRUCTOR.read_text().replace("    ### END SOLUTION\n", "", 1))
    assert main(["assignment", "release", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys) == f"error: {broken}: cell 3 ('top1_index'): '### BEGIN SOLUTION' without " \
        "'### END SOLUTION'. Fix: add '### END SOLUTION' after the region\n"
    assert main(["assignment", "grade", str(tmp_path / "absent"), "--out", str(tmp_path / "g"), "--instructor",
                 str(INSTRUCTOR)]) == 2
    assert "absent: no such folder. Fix: pass the folder that holds one sub-folder per student id" in \
        one_line_error(capsys)
    (tmp_path / "class" / "ann").mkdir(parents=True)
    assert main(["assignment", "grade", str(tmp_path / "class"), "--out", str(tmp_path / "class" / "grades"),
                 "--instructor", str(INSTRUCTOR)]) == 2
    assert "--out is inside SUBMISSIONS" in one_line_error(capsys)
    assert main(["assignment", "grade", str(tmp_path / "class"), "--out", str(tmp_path / "g"), "--instructor",
                 str(INSTRUCTOR), "--timeout", "0"]) == 2
    assert one_line_error(capsys) == "error: command line: field 'timeout' is 0.0; expected a number > 0\n"
    assert main(["assignment", "check", str(tmp_path / "absent.ipynb")]) == 2
    assert "absent.ipynb: no such notebook" in one_line_error(capsys)


def test_check_exits_1_and_shows_each_failing_checks_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # the kernel's setup cell imports fixture_exercises
    student = answered(released(tmp_path / "release"), {"top1_index": TOP1})
    nbformat.write(student, tmp_path / NAME)
    assert main(["assignment", "check", str(tmp_path / NAME)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "check               points  result",
        "top1_index_check       2/2  passed",
        "l2_normalise_check     0/1  FAILED",
        "q_ties                 -/1  manual",
        "score: 2/3 (1 of 2 checks passed; manual questions are graded by hand)",
        "",
        "failing checks:",
        "l2_normalise_check: l2_normalise: random rows: your function raised NotImplementedError"]
    assert cell(student, "top1_index_check").source == 'check("top1_index", top1_index)'  # public checks only


def test_check_exits_0_when_every_check_passes_with_plain_asserts(tmp_path, capsys):
    """nbgrader-style test cells (plain asserts, no cirlib) are checks too."""
    notebook = new.new_notebook(cells=[
        graded(new.new_code_cell, "import math", "setup_circle", locked=True),
        graded(new.new_code_cell, "def area(r):\n    return math.pi * r * r", "area", solution=True),
        graded(new.new_code_cell, "assert abs(area(2) - 4 * math.pi) < 1e-9", "area_check", grade=True, points=3),
        new.new_code_cell("raise RuntimeError('the rest of the notebook does not run')")])
    nbformat.write(notebook, tmp_path / "circle.ipynb")
    assert main(["assignment", "check", str(tmp_path / "circle.ipynb")]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "area_check     3/3  passed", "score: 3/3 (1 of 1 checks passed; manual questions are graded by hand)"]
