"""Notebook 05's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_failures
from tests.assignment import wrong_failures
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook05Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "05_failure_cases.py"
    MODULE = exercises_failures
    WRONG = wrong_failures.WRONG
