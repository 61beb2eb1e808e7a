"""Notebook 06's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_inversion
from tests.assignment import wrong_inversion
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook06Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "06_zero_shot_methods.py"
    MODULE = exercises_inversion
    WRONG = wrong_inversion.WRONG
