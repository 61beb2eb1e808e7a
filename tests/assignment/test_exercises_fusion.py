"""Notebook 02's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_fusion
from tests.assignment import wrong_fusion
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook02Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "02_combiner_training.py"
    MODULE = exercises_fusion
    WRONG = wrong_fusion.WRONG
