"""The exercise markup: graded cells, the student version, the solutions, and finding a student's answers."""

from __future__ import annotations

import copy

import nbformat
import pytest

from cirlib.assignment.checks import check
from cirlib.assignment.markup import (
    CODE_STUB,
    about,
    answer_cells,
    graded_cells,
    read_notebook,
    solution_functions,
    source_sha256,
    student_version,
    validate,
)
from cirlib.util.errors import FileError
from tests.assignment.sample_class import HERE, INSTRUCTOR, L2, TOP1, answered, broken_cells, cell


@pytest.fixture
def instructor():
    return read_notebook(INSTRUCTOR)


def test_graded_cells_list_kind_points_and_source_hash(instructor):
    cells = graded_cells(instructor)
    assert [(c.grade_id, c.kind, c.points) for c in cells] == [
        ("setup_fixture", "setup", 0), ("top1_index", "solution", 0), ("top1_index_check", "tests", 2),
        ("l2_normalise", "solution", 0), ("l2_normalise_check", "tests", 1), ("q_ties", "manual", 1)]
    assert all(c.sha256 == source_sha256(instructor.cells[c.index].source) for c in cells)
    assert read_notebook(INSTRUCTOR) == instructor  # a script's cell ids are positions, not random


def test_the_student_version_stubs_solutions_and_deletes_hidden_tests(instructor):
    instructor.cells[1].outputs, instructor.cells[1].execution_count = [{"output_type": "stream"}], 3
    student = student_version(instructor)
    lines = cell(student, "top1_index").source.splitlines()
    assert lines[0] == "def top1_index(scores):" and lines[-2:] == ["    " + line for line in CODE_STUB]
    assert '"""The column of each row' in lines[1]
    assert cell(student, "top1_index_check").source == 'check("top1_index", top1_index)'
    assert cell(student, "q_ties").source.endswith("\n\nYOUR ANSWER HERE")
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert "jupytext" not in student.metadata and instructor.cells[1].execution_count == 3  # a copy


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "'### BEGIN SOLUTION' without '### END SOLUTION'"),
    ("x = 1\n### END SOLUTION", "'### END SOLUTION' without '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "'### BEGIN SOLUTION' inside another one"),
])
def test_unpaired_markers_are_one_line_errors_naming_the_file(instructor, source, problem):
    cell(instructor, "top1_index").source = f"def top1_index(scores):\n{source}"
    with pytest.raises(FileError) as error, about(INSTRUCTOR):
        validate(instructor)
    assert str(error.value).startswith(f"{INSTRUCTOR}: cell 3 ('top1_index'): {problem}. Fix: ")
    assert "\n" not in str(error.value)


def test_validate_refuses_what_the_grader_cannot_grade(instructor):
    renamed = copy.deepcopy(instructor)
    cell(renamed, "top1_index").source = "def best(scores):\n    pass"
    with pytest.raises(FileError, match="solution cell 'top1_index' defines no function top1_index()"), \
            about(INSTRUCTOR):
        validate(renamed)
    repeated = copy.deepcopy(instructor)
    cell(repeated, "l2_normalise_check").metadata.nbgrader["grade_id"] = "top1_index_check"
    with pytest.raises(FileError, match="grade_id 'top1_index_check' is used by two cells"), about(INSTRUCTOR):
        validate(repeated)
    cell(instructor, "top1_index_check").metadata.nbgrader["points"] = "two"
    with pytest.raises(FileError, match="cell 'top1_index_check' has points \"two\""), about(INSTRUCTOR):
        validate(instructor)


def test_a_damaged_notebook_is_a_file_error(tmp_path):
    (tmp_path / "n.ipynb").write_text('{"cells": [')
    with pytest.raises(FileError, match="n.ipynb: not a readable notebook"):
        read_notebook(tmp_path / "n.ipynb")
    with pytest.raises(FileError, match="no such notebook"):
        read_notebook(tmp_path / "absent.ipynb")


def test_solution_functions_are_the_notebooks_solutions_and_pass_every_check(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # the setup cell imports fixture_exercises, as the kernel would
    functions = solution_functions(INSTRUCTOR)
    assert sorted(functions) == ["l2_normalise", "top1_index"]
    for name, function in functions.items():
        check(name, function)
        check(name, function, hidden=True)


def test_answers_are_found_by_grade_id_or_function_name_the_last_one_winning(instructor):
    student = student_version(instructor)
    answers = answer_cells(broken_cells(student), instructor)
    assert answers["top1_index"].source == TOP1 and "nbgrader" not in answers["top1_index"].metadata
    assert answers["l2_normalise"].source == L2  # the later of the two copies, not L2_BY_SUM
    assert answers["q_ties"].source.startswith("Without a rule")


def test_a_missing_answer_is_none_not_a_crash(instructor):
    student = answered(student_version(instructor), {"top1_index": "print('deleted my function')"})
    del cell(student, "top1_index").metadata["nbgrader"]
    student.cells = [c for c in student.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "q_ties"]
    answers = answer_cells(student, instructor)
    assert answers["top1_index"] is None and answers["q_ties"] is None
    assert answers["l2_normalise"].source == cell(student, "l2_normalise").source


def test_an_ipynb_reads_like_its_script(tmp_path, instructor):
    nbformat.write(instructor, tmp_path / "n.ipynb")
    assert graded_cells(read_notebook(tmp_path / "n.ipynb")) == graded_cells(instructor)
