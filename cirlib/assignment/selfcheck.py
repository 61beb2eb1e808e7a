"""`cirlib assignment check NOTEBOOK`: the student's self-check, graded the way the grader grades.

The notebook's setup cells, answer cells (chosen as the grader chooses them: the last cell that carries the
grade_id or defines the function) and its own (public) test cells run in a fresh kernel, nothing else of the
notebook; the table shows each check's points and each failure's message.
"""

from __future__ import annotations

from pathlib import Path

from cirlib.assignment.markup import about, read_notebook
from cirlib.assignment.plan import Verdict, assemble, cells, score
from cirlib.assignment.runner import run_cells


def self_check(path: Path | str, timeout: float = 60) -> list[Verdict]:
    """The verdicts of the notebook's own checks, run in a fresh kernel in the notebook's folder (no memory limit;
    the variant seed from this environment's CIRLIB_ASSIGNMENT_SEED, default 0)."""
    path = Path(path)
    notebook = read_notebook(path)
    with about(path):
        steps, manual = assemble(notebook, notebook)
    return score(steps, manual, run_cells(cells(steps, timeout), path.parent.resolve(), None, {}))


def passed_all(verdicts: list[Verdict]) -> bool:
    """Whether there is a check and every one passed (manual questions do not count)."""
    checks = [verdict for verdict in verdicts if verdict.kind == "tests"]
    return bool(checks) and all(verdict.passed for verdict in checks)


def report(verdicts: list[Verdict]) -> str:
    """The score table, the total, and each failing check's message."""
    width = max([len("check"), *(len(verdict.grade_id) for verdict in verdicts)])
    lines = [f"{'check':<{width}}  points  result"]
    for verdict in verdicts:
        earned = "-" if verdict.kind == "manual" else f"{verdict.points:g}"
        result = "manual" if verdict.kind == "manual" else "passed" if verdict.passed else "FAILED"
        lines.append(f"{verdict.grade_id:<{width}}  {earned + '/' + format(verdict.max_points, 'g'):>6}  {result}")
    checks = [verdict for verdict in verdicts if verdict.kind == "tests"]
    lines.append(f"score: {sum(v.points for v in checks):g}/{sum(v.max_points for v in checks):g} "
                 f"({sum(bool(v.passed) for v in checks)} of {len(checks)} checks passed; manual questions are "
                 "graded by hand)")
    failures = [f"{verdict.grade_id}: {verdict.message}" for verdict in checks if not verdict.passed]
    return "\n".join(lines + (["", "failing checks:", *failures] if failures else []))
