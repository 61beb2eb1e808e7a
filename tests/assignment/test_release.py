"""`cirlib assignment release`: no solution or hidden test leaves, byte-identical reruns, a manifest, and an out
folder that is never someone else's."""

from __future__ import annotations

import json
import shutil

import pytest

from cirlib.assignment.markup import read_notebook, source_sha256
from cirlib.assignment.release import default_notebooks, release
from cirlib.util.errors import CirlibError, FileError
from tests.assignment.sample_class import INSTRUCTOR, NAME


def solution_lines() -> list[str]:
    """Every non-empty line inside the fixture's solution and hidden-test regions (markers included)."""
    lines, inside = [], False
    for line in INSTRUCTOR.read_text().splitlines():
        inside = inside or "### BEGIN" in line
        if inside and line.strip().lstrip("#").strip():
            lines.append(line.strip().lstrip("#").strip())
        inside = inside and "### END" not in line
    return lines


def files(folder) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_the_release_holds_no_solution_line_and_no_hidden_test(tmp_path):
    release([INSTRUCTOR], tmp_path / "out")
    text = (tmp_path / "out" / NAME).read_text()
    secret = solution_lines()
    assert len(secret) == 18 and "check(\"top1_index\", top1_index, hidden=True)" in secret
    assert [line for line in secret if line in text] == []
    assert "BEGIN SOLUTION" not in text and "HIDDEN" not in text and "hidden=True" not in text
    assert text.count("raise NotImplementedError()") == 2 and text.count("YOUR ANSWER HERE") == 1


def test_releasing_twice_gives_identical_bytes(tmp_path):
    release([INSTRUCTOR], tmp_path / "a")
    first = files(tmp_path / "a")
    release([INSTRUCTOR], tmp_path / "a")  # into its own earlier release
    release([INSTRUCTOR], tmp_path / "b")
    assert files(tmp_path / "a") == first == files(tmp_path / "b")


def test_the_manifest_lists_grade_ids_kinds_points_and_instructor_hashes(tmp_path):
    manifest = release([INSTRUCTOR], tmp_path / "out")
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == \
        {**manifest, "format": "cirlib-assignment", "files": [NAME]}
    entry = manifest["notebooks"][NAME]
    notebook = read_notebook(INSTRUCTOR)
    assert [(c["grade_id"], c["kind"], c["points"]) for c in entry["cells"]] == [
        ("setup_fixture", "setup", 0), ("top1_index", "solution", 0), ("top1_index_check", "tests", 2),
        ("l2_normalise", "solution", 0), ("l2_normalise_check", "tests", 1), ("q_ties", "manual", 1)]
    assert entry["cells"][1]["sha256"] == source_sha256(notebook.cells[3].source)  # the instructor's source
    assert entry["points"] == manifest["total_points"] == 4


def test_a_folder_with_files_cirlib_did_not_write_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "essay.md").write_text("mine")
    with pytest.raises(FileError, match="holds files that cirlib did not write here"):
        release([INSTRUCTOR], tmp_path / "out")
    release([INSTRUCTOR], tmp_path / "ours")
    (tmp_path / "ours" / "sub").mkdir()
    (tmp_path / "ours" / "sub" / "essay.md").write_text("mine")
    with pytest.raises(FileError, match=r"holds 1 file\(s\) that cirlib did not write, e.g. sub/essay.md"):
        release([INSTRUCTOR], tmp_path / "ours")
    assert (tmp_path / "out" / "essay.md").read_text() == (tmp_path / "ours" / "sub" / "essay.md").read_text()


def test_a_smaller_release_removes_only_its_own_earlier_notebooks(tmp_path):
    second = tmp_path / "02_second.py"
    shutil.copy(INSTRUCTOR, second)
    release([INSTRUCTOR, second], tmp_path / "out")
    with pytest.raises(CirlibError, match="fixture_notebook.ipynb is given twice"):
        release([INSTRUCTOR, INSTRUCTOR], tmp_path / "out")
    release([second], tmp_path / "out")
    assert sorted(files(tmp_path / "out")) == [".cirlib.lock", "02_second.ipynb", "manifest.json"]


def test_without_notebooks_the_error_says_where_it_looked(tmp_path):
    with pytest.raises(CirlibError, match=r"no \[0-9\]\[0-9\]_\*.ipynb notebooks. Fix: run from the repository root"):
        default_notebooks(tmp_path)
