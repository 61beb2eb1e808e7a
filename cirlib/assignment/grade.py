"""`cirlib assignment grade`: every student's notebooks, each graded in its own process, into class tables.

SUBMISSIONS holds one folder per student id with that student's notebooks, named as released. For each student
and notebook the grader assembles the grading notebook (:mod:`.plan`), runs it in a fresh kernel under a per-cell
timeout and a memory limit (:mod:`.runner`) and scores it. It writes students/<id>.json (each check: points,
passed, message; manual questions with the student's answer, 0 points until graded by hand), class.csv (one row
per student, one column per check, and the total), pass_rates.csv (per check) and grading.json (the settings and
the files written), all atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cirlib.assignment.checks import SEED_VARIABLE
from cirlib.assignment.markup import about, read_notebook, validate
from cirlib.assignment.outputs import OwnedFolder, json_bytes
from cirlib.assignment.plan import Manual, Verdict, assemble, cells, score
from cirlib.assignment.release import notebook_names
from cirlib.assignment.runner import run_cells
from cirlib.util.errors import CirlibError, ConfigError, FileError
from cirlib.util.locks import folder_lock

RECORD = "grading.json"
VARIANT_SOURCES = ("student_id",)


@dataclass(frozen=True)
class GradeOptions:
    """How each submission runs: seconds per cell, address-space limit in MB (None: none), workers in parallel,
    and where the variant seed comes from (None: seed 0 for everyone)."""

    timeout: float = 60
    memory_mb: int | None = 8192
    workers: int = 1
    variant_seed_from: str | None = None

    def __post_init__(self) -> None:
        limits = {"timeout": self.timeout, "workers": self.workers}
        if self.memory_mb is not None:
            limits["memory_mb"] = self.memory_mb
        for field, value in limits.items():
            if not value > 0:
                raise ConfigError("command line", field, value, "a number > 0")
        if self.variant_seed_from not in (None, *VARIANT_SOURCES):
            raise ConfigError("command line", "variant_seed_from", self.variant_seed_from, "student_id")


def student_seed(student_id: str) -> int:
    """The variant seed of a student: the first 32 bits of the sha256 of the id (stable across runs and machines)."""
    return int(hashlib.sha256(student_id.encode("utf-8")).hexdigest()[:8], 16)


@dataclass(frozen=True)
class Instructor:
    """One instructor notebook: its path, the name students submit it under, and the notebook."""

    path: Path
    name: str
    notebook: object


def load_instructor(paths: Sequence[Path]) -> list[Instructor]:
    """The instructor notebooks, validated; a grade_id in two of them is an error (class.csv keys by grade_id)."""
    loaded, owner = [], {}
    for path, name in zip(paths, notebook_names(paths)):
        notebook = read_notebook(path)
        with about(path):
            for cell in validate(notebook):
                if cell.grade_id in owner:
                    raise FileError(path, f"grade_id {cell.grade_id!r} is also in {owner[cell.grade_id]}",
                                    "make grade_ids unique across the notebooks")
                owner[cell.grade_id] = path.name
        loaded.append(Instructor(Path(path), name, notebook))
    return loaded


def students(submissions: Path) -> list[str]:
    """The student ids: the sub-folders of ``submissions`` (hidden ones skipped), sorted."""
    if not submissions.is_dir():
        raise FileError(submissions, "no such folder", "pass the folder that holds one sub-folder per student id")
    ids = sorted(path.name for path in submissions.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not ids:
        raise FileError(submissions, "holds no student folders", "put each student's notebooks in a folder named "
                        "by the student id")
    return ids


def _all_failed(instructor: Instructor, message: str) -> list[Verdict]:
    """Every check of a notebook failed with one message (not submitted, unreadable)."""
    steps, manual = assemble(instructor.notebook, instructor.notebook)
    return [Verdict(step.grade_id, "tests", 0, step.points, False, message) for step in steps if step.role == "tests"] \
        + [Verdict(question.grade_id, "manual", 0, question.points, None, "manual: no answer cell found")
           for question in manual]


def grade_notebook(instructor: Instructor, submission: Path, seed: int, options: GradeOptions) \
        -> tuple[list[Verdict], list[Manual]]:
    """The verdicts of one student's notebook, and the manual questions with the student's answers."""
    if not submission.is_file():
        return _all_failed(instructor, f"not submitted: no {submission.name} in the student's folder"), []
    try:
        notebook = read_notebook(submission)
    except FileError as error:
        return _all_failed(instructor, f"unreadable notebook: {error.problem}"), []
    steps, manual = assemble(instructor.notebook, notebook)
    outcomes = run_cells(cells(steps, options.timeout), instructor.path.parent.resolve(), options.memory_mb,
                         {SEED_VARIABLE: str(seed)})
    return score(steps, manual, outcomes), manual


def grade_student(student: str, folder: Path, instructors: list[Instructor], options: GradeOptions) -> dict:
    """One student's report: per notebook, the verdicts, points and manual answers; the total."""
    seed = student_seed(student) if options.variant_seed_from == "student_id" else 0
    notebooks = {}
    for instructor in instructors:
        verdicts, manual = grade_notebook(instructor, folder / instructor.name, seed, options)
        answers = {question.grade_id: question.answer for question in manual}
        notebooks[instructor.name] = {
            "checks": [{**verdict.to_json(), **({"answer": answers.get(verdict.grade_id)}
                                               if verdict.kind == "manual" else {})} for verdict in verdicts],
            "points": sum(verdict.points for verdict in verdicts),
            "max_points": sum(verdict.max_points for verdict in verdicts)}
    return {"student": student, "variant_seed": seed, "notebooks": notebooks,
            "total": sum(entry["points"] for entry in notebooks.values()),
            "max_total": sum(entry["max_points"] for entry in notebooks.values())}


def _number(value: float) -> str:
    return f"{value:g}"


def _checks(report: dict) -> list[dict]:
    return [check for entry in report["notebooks"].values() for check in entry["checks"]]


def class_table(reports: list[dict]) -> str:
    """class.csv: student, one column per check (points earned; "manual" for a manual question), total."""
    rows = [["student", *[check["grade_id"] for check in _checks(reports[0])], "total"]]
    for report in reports:
        rows.append([report["student"], *[_number(check["points"]) if check["kind"] == "tests" else "manual"
                                          for check in _checks(report)], _number(report["total"])])
    return _csv(rows)


def pass_rates(reports: list[dict], names: dict[str, str]) -> str:
    """pass_rates.csv: per check, its notebook, points, how many students passed, of how many, and the rate."""
    rows = [["notebook", "check", "points", "passed", "students", "pass_rate"]]
    for index, check in enumerate(_checks(reports[0])):
        passed = [_checks(report)[index]["passed"] for report in reports]
        manual = check["kind"] == "manual"
        rows.append([names[check["grade_id"]], check["grade_id"], _number(check["max_points"]),
                     "" if manual else str(sum(passed)), str(len(reports)),
                     "manual" if manual else f"{sum(passed) / len(reports):.3f}"])
    return _csv(rows)


def _csv(rows: list[list[str]]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def grade(submissions: Path | str, out: Path | str, instructor: Sequence[Path | str],
          options: GradeOptions = GradeOptions(), graded: Callable[[dict], None] | None = None) -> list[dict]:
    """Grade every student of ``submissions`` against the ``instructor`` notebooks; write the reports and tables
    into ``out``; return the reports (one per student, sorted by id). ``graded`` is called with each report as
    soon as it is ready, in id order (the command line prints a line)."""
    submissions, out = Path(submissions), Path(out)
    instructors, ids = load_instructor([Path(path) for path in instructor]), students(submissions)
    if out.resolve().is_relative_to(submissions.resolve()):
        raise CirlibError(f"{out}: --out is inside SUBMISSIONS (it would be graded as a student). Fix: write the "
                          "grades elsewhere")
    with folder_lock(out, "grades", wait=False):
        folder = OwnedFolder(out, RECORD)
        reports = []
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            for report in pool.map(lambda student: grade_student(student, submissions / student, instructors,
                                                                 options), ids):
                reports.append(report)
                if graded is not None:
                    graded(report)
        names = {check["grade_id"]: name for name, entry in reports[0]["notebooks"].items()
                 for check in entry["checks"]}
        files = {f"students/{report['student']}.json": json_bytes(report) for report in reports}
        files["class.csv"] = class_table(reports).encode("utf-8")
        files["pass_rates.csv"] = pass_rates(reports, names).encode("utf-8")
        folder.write({"instructor": [str(item.path) for item in instructors], "timeout": options.timeout,
                      "memory_mb": options.memory_mb, "variant_seed_from": options.variant_seed_from,
                      "students": ids}, files)
    return reports
