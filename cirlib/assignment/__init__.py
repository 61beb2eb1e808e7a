"""Course assignments: graded exercises in the notebooks, a student release, self-checks and class grading.

``from cirlib.assignment import check`` is what a notebook's setup cell imports: it registers the exercises of
all six notebooks (the exercises_<topic> modules) and gives the check harness (:mod:`.checks`). The workflow
(release -> students -> collect -> grade -> feedback) is in docs/teaching.md.
"""

from .checks import CheckFailed, check, variant_seed
# Imported for their registrations (each registers its notebook's exercises).
from . import exercises_metrics, exercises_fusion, exercises_routing  # noqa: F401  notebooks 01, 02, 03
from . import exercises_weimocir, exercises_failures, exercises_inversion  # noqa: F401  notebooks 04, 05, 06

__all__ = ["CheckFailed", "check", "variant_seed"]
