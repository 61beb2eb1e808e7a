"""Course assignments: graded exercises in the notebooks, a student release, self-checks and class grading.

``from cirlib.assignment import check`` is what a notebook's setup cell imports: it registers the exercises of
all six notebooks (the exercises_<topic> modules) and gives the check harness (:mod:`.checks`). The workflow
(release -> students -> collect -> grade -> feedback) is in docs/teaching.md.
"""

# Imported for their registrations (each registers its notebook's exercises).
from cirlib.assignment import (
    exercises_failures,
    exercises_fusion,
    exercises_inversion,
    exercises_metrics,
    exercises_routing,
    exercises_weimocir,
)
from cirlib.assignment.checks import CheckFailed, check, variant_seed

__all__ = ["CheckFailed", "check", "variant_seed"]
