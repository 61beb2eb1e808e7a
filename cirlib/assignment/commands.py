"""What ``cirlib assignment release|check|grade`` do with their parsed arguments (the parser: :mod:`cirlib.cli`)."""

from __future__ import annotations

import argparse

from cirlib.assignment import grade as grading
from cirlib.assignment import release as releasing
from cirlib.assignment import selfcheck


def release(args: argparse.Namespace) -> None:
    """Write the student release of the instructor notebooks (default: notebooks/NN_*.ipynb) to ``--out``."""
    notebooks = args.notebooks or releasing.default_notebooks()
    print(releasing.summary(releasing.release(notebooks, args.out), args.out))


def check(args: argparse.Namespace) -> int:
    """A student's self-check; the exit status is 1 when a check fails."""
    verdicts = selfcheck.self_check(args.notebook, timeout=args.timeout)
    print(selfcheck.report(verdicts))
    return 0 if selfcheck.passed_all(verdicts) else 1


def grade(args: argparse.Namespace) -> None:
    """Grade every student's submission, printing each total as it is done."""
    options = grading.GradeOptions(timeout=args.timeout, memory_mb=args.memory_mb or None, workers=args.workers,
                                   variant_seed_from=args.variant_seed_from)
    reports = grading.grade(args.submissions, args.out, args.instructor or releasing.default_notebooks(), options,
                            lambda report: print(f"{report['student']}: {report['total']:g}/{report['max_total']:g} "
                                                 "(manual questions not counted)", flush=True))
    print(f"graded {len(reports)} student(s) into {args.out}: students/<id>.json, class.csv, pass_rates.csv")
