"""Notebook 04's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_weimocir
from tests.assignment import wrong_weimocir
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook04Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "04_alpha_beta_sweeps.py"
    MODULE = exercises_weimocir
    WRONG = wrong_weimocir.WRONG
