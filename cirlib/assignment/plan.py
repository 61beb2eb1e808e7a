"""The grading notebook of one submission, and the verdict of each of its checks.

The grading notebook is the instructor's setup cells, then for each exercise the student's answer cell followed by
the instructor's test cell (hidden tests included: the student's own test cells are never used). Nothing else of
the notebook runs, so grading never reruns training and no later cell can overwrite an answer. A check passes
only when its test cell ran and raised nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cirlib.assignment.markup import answer_cells, graded_cells
from cirlib.assignment.runner import Outcome

SETUP_SECONDS = 600
"""The time limit of a setup cell (the instructor's imports), whatever the per-cell limit of the students' code."""

CHECK_IMPORT = "from cirlib.assignment import check  # the harness's own check: no answer cell can replace it\n"


@dataclass(frozen=True)
class Step:
    """One code cell of the grading notebook."""

    role: str  # "setup", "answer" or "tests"
    grade_id: str  # the cell's grade_id (an answer: its exercise's)
    source: str | None  # None: the student's answer is missing
    exercise: str | None = None  # tests: the exercise whose answer it checks (the solution cell above it)
    points: float = 0


@dataclass(frozen=True)
class Manual:
    """A manually graded question and the student's answer (None: missing)."""

    grade_id: str
    points: float
    answer: str | None


@dataclass(frozen=True)
class Verdict:
    """One check's result for one student: earned points (manual: 0 until graded by hand), passed (manual: None)."""

    grade_id: str
    kind: str  # "tests" or "manual"
    points: float
    max_points: float
    passed: bool | None
    message: str

    def to_json(self) -> dict:
        return {"grade_id": self.grade_id, "kind": self.kind, "points": self.points, "max_points": self.max_points,
                "passed": self.passed, "message": self.message}


def assemble(instructor: Any, submission: Any) -> tuple[list[Step], list[Manual]]:
    """The grading notebook's steps and the manual questions, from the instructor's notebook and the student's."""
    answers = answer_cells(submission, instructor)
    steps, manual, exercise = [], [], None
    for graded in graded_cells(instructor):
        source = instructor.cells[graded.index].source
        if graded.kind == "setup":
            steps.append(Step("setup", graded.grade_id, source))
        elif graded.kind == "solution":
            exercise, answer = graded.grade_id, answers[graded.grade_id]
            steps.append(Step("answer", graded.grade_id, None if answer is None else answer.source))
        elif graded.kind == "tests":
            steps.append(Step("tests", graded.grade_id, (CHECK_IMPORT if "check(" in source else "") + source,
                              exercise, graded.points))
        else:
            answer = answers[graded.grade_id]
            manual.append(Manual(graded.grade_id, graded.points, None if answer is None else answer.source))
    return steps, manual


def cells(steps: list[Step], timeout: float) -> list[tuple[str, float]]:
    """What the kernel runs: each step's source (a missing answer runs as an empty cell) and its time limit
    (``timeout``; a setup cell at least :data:`SETUP_SECONDS`)."""
    return [(step.source or "", max(timeout, SETUP_SECONDS) if step.role == "setup" else timeout) for step in steps]


def _where(step: Step) -> str:
    return {"setup": f"the setup cell {step.grade_id!r}", "answer": f"the answer cell of {step.grade_id!r}",
            "tests": f"the check {step.grade_id!r}"}[step.role]


def _stop_reason(steps: list[Step], outcomes: list[Outcome]) -> str:
    """Why the cells after a timeout or a dead kernel did not run."""
    for step, outcome in zip(steps, outcomes):
        if outcome.status == "timeout":
            return f"{_where(step)} {outcome.message}"
        if outcome.status == "dead":
            return f"in {_where(step)}, {outcome.message}"
    return "the run stopped early"


def _failure(index: int, steps: list[Step], outcomes: list[Outcome]) -> str:
    """The message of the failed check ``steps[index]``: the most telling cause first."""
    step, outcome = steps[index], outcomes[index]
    answer = next((i for i, s in enumerate(steps) if s.role == "answer" and s.grade_id == step.exercise), None)
    setup_errors = [f"{_where(s)} raised {o.message}" for s, o in zip(steps, outcomes)
                    if s.role == "setup" and o.status == "error"]
    if _missing(steps, step.exercise):
        return f"no answer: no cell has grade_id {step.exercise!r} or defines {step.exercise}()"
    if outcome.status in ("timeout", "dead", "not run"):
        return ("not run: " if outcome.status == "not run" else "") + _stop_reason(steps, outcomes)
    if setup_errors:
        return f"{setup_errors[0]} (the instructor's cell: tell the instructor)"
    if answer is not None and outcomes[answer].status == "error":
        return f"your answer cell raised {outcomes[answer].message}"
    return outcome.message


def score(steps: list[Step], manual: list[Manual], outcomes: list[Outcome]) -> list[Verdict]:
    """Each check's verdict (in notebook order, the manual questions last)."""
    verdicts = []
    for index, step in enumerate(steps):
        if step.role != "tests":
            continue
        passed = outcomes[index].status == "ok" and not _missing(steps, step.exercise)
        verdicts.append(Verdict(step.grade_id, "tests", step.points if passed else 0, step.points, passed,
                                "" if passed else _failure(index, steps, outcomes)))
    verdicts += [Verdict(question.grade_id, "manual", 0, question.points, None,
                         "manual: graded by hand" if question.answer is not None else "manual: no answer cell found")
                 for question in manual]
    return verdicts


def _missing(steps: list[Step], exercise: str | None) -> bool:
    """Whether the student's answer to ``exercise`` is missing (a check of no exercise has no answer to miss)."""
    return any(step.role == "answer" and step.grade_id == exercise and step.source is None for step in steps)
