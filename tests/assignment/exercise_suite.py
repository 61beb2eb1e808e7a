"""What every notebook's graded exercises must satisfy (issue 17, items 2, 6, 7), as a base class for the
test_exercises_<topic> modules: subclass :class:`ExerciseSuite` as ``Test...`` and set NOTEBOOK, MODULE, WRONG.

- the notebook's solution cells define exactly the module's exercises, and use no cirlib (plain torch/numpy);
- each solution passes the public and the hidden checks, for the default variant and another student's;
- a stub (NotImplementedError) fails; every known-wrong answer fails a public or a hidden check, and at least one
  of an exercise's wrong answers fails a public check (the student is told before grading);
- cases are made from the seed alone: the same seed gives the same inputs, another seed other inputs, and the
  hidden cases are not the public ones.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from cirlib.assignment.checks import SEED_VARIABLE, CheckFailed, Exercise, check
from cirlib.assignment.markup import graded_cells, read_notebook, solution_functions

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
STUDENT_SEED = 41  # a second variant: what the grader would derive from some student id


def exercises(module: ModuleType) -> dict[str, Exercise]:
    """The exercises a module registers, by name."""
    return {value.name: value for value in vars(module).values() if isinstance(value, Exercise)}


def failure(name: str, answer: Callable[..., Any], hidden: bool) -> str | None:
    """The CheckFailed message of ``answer`` on exercise ``name`` (public or hidden cases), None when it passes."""
    try:
        check(name, answer, hidden=hidden)
    except CheckFailed as error:
        return str(error)
    return None


def flat(value: Any) -> list[Any]:
    """Tensors, numbers and strings of a nested case argument, in order, for comparing two cases' inputs."""
    if isinstance(value, dict):
        return [item for key in sorted(value) for item in [key, *flat(value[key])]]
    if isinstance(value, (list, tuple)):
        return [item for part in value for item in flat(part)]
    return [value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else value]


def uses_cirlib(source: str) -> bool:
    """Whether code imports or names cirlib (its docstrings may mention it)."""
    for node in ast.walk(ast.parse(source)):
        modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(module.split(".")[0] == "cirlib" for module in modules) or \
                (isinstance(node, ast.Name) and node.id == "cirlib"):
            return True
    return False


def not_implemented(*args: Any) -> Any:
    raise NotImplementedError()


class ExerciseSuite:
    NOTEBOOK: Path
    MODULE: ModuleType
    WRONG: dict[str, list[Callable[..., Any]]]

    @pytest.fixture(scope="class")
    @classmethod
    def answers(cls) -> dict[str, Callable[..., Any]]:
        return solution_functions(cls.NOTEBOOK)

    def test_the_notebook_solves_exactly_the_modules_exercises_each_with_wrong_answers(self, answers):
        assert sorted(answers) == sorted(exercises(self.MODULE)) == sorted(self.WRONG)
        assert all(len(wrong) >= 2 for wrong in self.WRONG.values())

    def test_the_solutions_use_plain_torch_not_the_cirlib_code_they_reimplement(self):
        notebook = read_notebook(self.NOTEBOOK)
        sources = {cell.grade_id: notebook.cells[cell.index].source for cell in graded_cells(notebook)
                   if cell.kind == "solution" and notebook.cells[cell.index].cell_type == "code"}
        assert sorted(sources) == sorted(self.WRONG)
        assert [name for name, source in sources.items() if uses_cirlib(source)] == []

    @pytest.mark.parametrize("seed", [0, STUDENT_SEED])
    def test_the_solutions_pass_the_public_and_the_hidden_checks(self, answers, seed, monkeypatch):
        monkeypatch.setenv(SEED_VARIABLE, str(seed))
        failed = [failure(name, answer, hidden) for name, answer in answers.items() for hidden in (False, True)]
        assert [message for message in failed if message] == []

    def test_a_stub_fails_every_check_and_says_so(self):
        for name in self.WRONG:
            for hidden in (False, True):
                assert failure(name, not_implemented, hidden).startswith(f"{name}: ")
                assert "raised NotImplementedError" in failure(name, not_implemented, hidden)

    @pytest.mark.parametrize("seed", [0, STUDENT_SEED])
    def test_every_wrong_answer_fails_and_one_per_exercise_fails_publicly(self, seed, monkeypatch):
        monkeypatch.setenv(SEED_VARIABLE, str(seed))
        for name, wrong in self.WRONG.items():
            public = {answer.__name__: failure(name, answer, False) for answer in wrong}
            caught = {answer.__name__: public[answer.__name__] or failure(name, answer, True) for answer in wrong}
            assert [label for label, message in caught.items() if message is None] == [], name
            assert any(public.values()), f"{name}: no wrong answer fails a public check"

    def test_cases_come_from_the_seed_alone_and_hidden_ones_differ(self):
        for name, exercise in exercises(self.MODULE).items():
            public, hidden = exercise.cases(0, False), exercise.cases(0, True)
            assert flat([c.args for c in public]) == flat([c.args for c in exercise.cases(0, False)]), name
            assert flat([c.args for c in public]) != flat([c.args for c in exercise.cases(STUDENT_SEED, False)]), name
            assert not {case.label for case in public} & {case.label for case in hidden}, name
            assert len(hidden) > len(public) >= 2, name
