"""The curated mutants (``make mutants``) still apply: a code change that moves a mutated line must update the list in
the same commit, or the next mutation run would stop before running anything."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutants_run", ROOT / "mutants" / "run.py")
mutants_run = sys.modules.setdefault("mutants_run", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(mutants_run)
MUTANTS = mutants_run.load_mutants()


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_changes_exactly_one_line_and_names_existing_tests(mutant):
    original = (ROOT / mutant.file).read_text()
    mutated = mutants_run.mutated_text(original, mutant)  # raises unless the line occurs exactly once
    assert mutated != original
    assert sum(a != b for a, b in zip(original.splitlines(), mutated.splitlines())) == 1
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{mutant.name}: {test} does not exist"
