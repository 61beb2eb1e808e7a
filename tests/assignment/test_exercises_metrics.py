"""Notebook 01's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_metrics
from tests.assignment import wrong_metrics
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook01Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "01_clip_features.py"
    MODULE = exercises_metrics
    WRONG = wrong_metrics.WRONG
