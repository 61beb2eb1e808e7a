"""`cirlib assignment grade`: the sample class grades to the expected table; failures, timeouts, dead kernels and
the memory limit fail checks with feedback that names the check and never shows hidden test code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cirlib.assignment.grade import student_seed
from cirlib.assignment.plan import Manual, Step, score
from cirlib.assignment.runner import Outcome, run_cells
from cirlib.cli import main
from tests.assignment.sample_class import INSTRUCTOR, NAME, answered, released, sample_class, submit

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CLASS_TABLE = """\
student,top1_index_check,l2_normalise_check,q_ties,total
a_correct,2,1,manual,3
b_partly_wrong,0,1,manual,1
c_broken_cells,2,1,manual,3
d_crash,0,0,manual,0
"""
PASS_RATES = """\
notebook,check,points,passed,students,pass_rate
fixture_notebook.ipynb,top1_index_check,2,2,4,0.500
fixture_notebook.ipynb,l2_normalise_check,1,3,4,0.750
fixture_notebook.ipynb,q_ties,1,,4,manual
"""


def grade(submissions: Path, out: Path, *options: str) -> int:
    return main(["assignment", "grade", str(submissions), "--out", str(out), "--instructor", str(INSTRUCTOR),
                 "--workers", "2", *options])


def checks(out: Path, student: str) -> dict[str, dict]:
    report = json.loads((out / "students" / f"{student}.json").read_text())
    return {check["grade_id"]: check for check in report["notebooks"][NAME]["checks"]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample class (correct, partly wrong, broken cells, kernel crash) graded through the command line."""
    folder = tmp_path_factory.mktemp("class")
    sample_class(folder / "submissions", released(folder / "release"))
    assert grade(folder / "submissions", folder / "grades") == 0
    return folder / "grades"


def test_the_sample_class_grades_to_the_expected_tables(graded):
    assert (graded / "class.csv").read_text() == CLASS_TABLE
    assert (graded / "pass_rates.csv").read_text() == PASS_RATES
    assert sorted(path.name for path in (graded / "students").iterdir()) == \
        ["a_correct.json", "b_partly_wrong.json", "c_broken_cells.json", "d_crash.json"]


def test_reports_give_points_messages_and_manual_answers(graded):
    correct = checks(graded, "a_correct")
    assert [(c["points"], c["max_points"], c["passed"], c["message"]) for c in correct.values()] == \
        [(2, 2, True, ""), (1, 1, True, ""), (0, 1, None, "manual: graded by hand")]
    assert "tied targets" in correct["q_ties"]["answer"]
    crash = checks(graded, "d_crash")
    assert crash["top1_index_check"]["message"].startswith("in the check 'top1_index_check', the kernel died")
    assert crash["l2_normalise_check"]["message"].startswith("not run: in the check 'top1_index_check', the kernel "
                                                             "died")


def test_a_hidden_failure_is_explained_without_hidden_code(graded):
    """b_partly_wrong breaks ties the wrong way: the public check passes, the hidden one fails; the student's
    emptied check cell and replaced `check` change nothing."""
    message = checks(graded, "b_partly_wrong")["top1_index_check"]["message"]
    assert message.startswith("top1_index: tied scores: Tensor-likes are not equal!")
    hidden_code = INSTRUCTOR.read_text().split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    assert "hidden=True" in hidden_code and "hidden" not in message and "check(" not in message


def test_an_out_folder_with_foreign_files_is_refused_before_grading(graded, capsys):
    before = {path: path.read_bytes() for path in graded.rglob("*") if path.is_file()}
    (graded / "notes.txt").write_text("mine")
    assert grade(graded.parent / "submissions", graded) == 2
    assert capsys.readouterr().err == f"error: {graded}: holds 1 file(s) that cirlib did not write, e.g. notes.txt. " \
        "Fix: choose a new or empty --out folder (cirlib never overwrites files it did not write)\n"
    (graded / "notes.txt").unlink()
    assert {path: path.read_bytes() for path in graded.rglob("*") if path.is_file()} == before


def test_a_timeout_fails_its_check_and_the_student_seed_reaches_the_kernel(tmp_path):
    """The answer of top1_index reports the seed its kernel sees; l2_normalise's runs forever and fails at the
    per-cell limit."""
    student = released(tmp_path / "release")
    report_seed = "import os\n\n\ndef top1_index(scores):\n    raise ValueError(os.environ['CIRLIB_ASSIGNMENT_SEED'])\n"
    endless = "def l2_normalise(vectors):\n    while True:\n        pass\n"
    submit(tmp_path / "submissions", "endless", answered(student, {"top1_index": report_seed,
                                                                   "l2_normalise": endless}))
    assert grade(tmp_path / "submissions", tmp_path / "grades", "--timeout", "3", "--variant-seed-from",
                 "student_id") == 0
    report = checks(tmp_path / "grades", "endless")
    assert report["top1_index_check"]["message"] == \
        f"top1_index: random scores: your function raised ValueError: {student_seed('endless')}"
    assert report["l2_normalise_check"]["message"] == "the check 'l2_normalise_check' ran past its limit of 3 s"
    assert json.loads((tmp_path / "grades" / "students" / "endless.json").read_text())["variant_seed"] == \
        student_seed("endless") != student_seed("other")


def test_the_runner_stops_at_a_timeout_or_a_dead_kernel_and_caps_memory(tmp_path):
    """Plain cells (no torch: a light kernel): an error is reported by name and value and the next cell still
    runs (ipykernel must not abort it), 16 GB of address space are refused under a 2 GB limit, the environment
    reaches the kernel, and nothing runs after a timeout or a crash."""
    cells = [("x = 1", 5), ("raise KeyError('k')", 5), ("raise ValueError('ran after an error')", 5),
             ("import mmap\nmmap.mmap(-1, 16 << 30)", 5),
             ("import os\nassert os.environ['MARK'] == 'm' and os.getcwd() == %r" % str(tmp_path), 5),
             ("while True:\n    pass", 1), ("x", 5)]
    assert run_cells(cells, tmp_path, 2048, {"MARK": "m"}) == [
        Outcome("ok"), Outcome("error", "KeyError: 'k'"), Outcome("error", "ValueError: ran after an error"),
        Outcome("error", "OSError: [Errno 12] Cannot allocate memory"), Outcome("ok"),
        Outcome("timeout", "ran past its limit of 1 s"), Outcome("not run")]
    crash = run_cells([("import os\nos._exit(1)", 5), ("x = 1", 5)], tmp_path, None, {})
    assert [outcome.status for outcome in crash] == ["dead", "not run"]


def test_verdicts_say_why_a_check_failed():
    """The message of each failure cause, from the outcomes of a grading notebook (no kernel)."""
    steps = [Step("setup", "setup_x", "import x"), Step("answer", "f", "def f(): pass"),
             Step("tests", "f_check", "check('f', f)", "f", 2), Step("answer", "g", None),
             Step("tests", "g_check", "check('g', g)", "g", 1), Step("answer", "h", "def h(): pass"),
             Step("tests", "h_check", "check('h', h)", "h", 1)]
    manual = [Manual("q_why", 1, "because")]
    ran = [Outcome("ok")] * 7
    assert [(v.grade_id, v.points, v.passed, v.message) for v in score(steps, manual, ran)] == [
        ("f_check", 2, True, ""), ("g_check", 0, False, "no answer: no cell has grade_id 'g' or defines g()"),
        ("h_check", 1, True, ""), ("q_why", 0, None, "manual: graded by hand")]
    broken = [Outcome("error", "ModuleNotFoundError: x"), Outcome("error", "SyntaxError: bad"),
              Outcome("error", "NameError: f"), Outcome("ok"), Outcome("ok"), Outcome("timeout", "ran past it"),
              Outcome("not run")]
    assert [v.message for v in score(steps, [], broken)] == [
        "the setup cell 'setup_x' raised ModuleNotFoundError: x (the instructor's cell: tell the instructor)",
        "no answer: no cell has grade_id 'g' or defines g()",
        "not run: the answer cell of 'h' ran past it"]


def test_a_missing_or_unreadable_notebook_fails_its_checks_without_a_kernel(tmp_path):
    (tmp_path / "submissions" / "absent").mkdir(parents=True)
    (tmp_path / "submissions" / "damaged").mkdir()
    (tmp_path / "submissions" / "damaged" / NAME).write_text('{"cells": [')
    assert grade(tmp_path / "submissions", tmp_path / "grades") == 0
    assert checks(tmp_path / "grades", "absent")["top1_index_check"]["message"] == \
        f"not submitted: no {NAME} in the student's folder"
    assert checks(tmp_path / "grades", "damaged")["l2_normalise_check"]["message"].startswith(
        "unreadable notebook: not a readable notebook")
    assert (tmp_path / "grades" / "class.csv").read_text().splitlines()[1:] == \
        ["absent,0,0,manual,0", "damaged,0,0,manual,0"]

