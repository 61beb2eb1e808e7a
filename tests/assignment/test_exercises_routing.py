"""Notebook 03's graded exercises: its solutions pass, stubs and known-wrong answers fail (see exercise_suite)."""

from cirlib.assignment import exercises_routing
from tests.assignment import wrong_routing
from tests.assignment.exercise_suite import NOTEBOOKS, ExerciseSuite


class TestNotebook03Exercises(ExerciseSuite):
    NOTEBOOK = NOTEBOOKS / "03_moe_gating.py"
    MODULE = exercises_routing
    WRONG = wrong_routing.WRONG
