"""The check harness of the graded exercises: a student's function against cirlib's reference, case by case.

An :class:`Exercise` makes its inputs from a seed (:func:`variant_seed`: 0, or the grader's per-student seed) and
computes the expected values with the reference at check time, so no expected value is stored anywhere. A failure
raises :class:`CheckFailed` naming the exercise, the case's label and the mismatch, never the test code.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from cirlib.util.errors import ConfigError

SEED_VARIABLE = "CIRLIB_ASSIGNMENT_SEED"
"""The environment variable the grader sets to the student's variant seed (``--variant-seed-from student_id``)."""

FLOAT_TOLERANCE = {"rtol": 1.3e-6, "atol": 1e-5}
"""Tolerances for Python floats: torch.testing.assert_close's float32 defaults."""


class CheckFailed(AssertionError):
    """A student's function disagrees with the reference on one case ("<name>: <case label>: <mismatch>")."""


def same(got: Any, expected: Any, rtol: float | None = None, atol: float | None = None) -> None:
    """Raise AssertionError(message) unless ``got`` equals ``expected``: tensors and arrays by
    torch.testing.assert_close (exact for integer dtypes), mappings and sequences element-wise, floats within
    ``rtol``/``atol`` (default: float32's; one given, the other is 0), anything else by ``==``."""
    if (rtol is None) != (atol is None):
        rtol, atol = rtol or 0.0, atol or 0.0
    _same(got, expected, "", rtol, atol)


def _at(where: str) -> str:
    """The prefix of a message about the position ``where`` ("[2]['R@10']"; "" for the whole value)."""
    return f"at {where}: " if where else ""


def _same(got: Any, expected: Any, where: str, rtol: float | None, atol: float | None) -> None:
    """:func:`same` at the position ``where``, which prefixes every message."""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        _same_tensor(got, expected, where, rtol, atol)
    elif isinstance(expected, Mapping):
        _same_mapping(got, expected, where, rtol, atol)
    elif isinstance(expected, Sequence) and not isinstance(expected, (str, bytes)):
        _same_sequence(got, expected, where, rtol, atol)
    elif isinstance(expected, Real) and not isinstance(expected, bool):
        _same_number(got, expected, where, rtol, atol)
    elif got != expected:
        raise AssertionError(f"{_at(where)}got {got!r}, expected {expected!r}")


def _same_tensor(got: Any, expected: Any, where: str, rtol: float | None, atol: float | None) -> None:
    expected_tensor = torch.as_tensor(expected)
    if not isinstance(got, (torch.Tensor, np.ndarray)):
        raise AssertionError(f"{_at(where)}got a {type(got).__name__}, expected a {type(expected).__name__} of "
                             f"shape {tuple(expected_tensor.shape)}")
    try:
        torch.testing.assert_close(torch.as_tensor(got), expected_tensor, rtol=rtol, atol=atol)
    except AssertionError as error:
        raise AssertionError(_at(where) + " ".join(str(error).split())) from None


def _same_mapping(got: Any, expected: Mapping, where: str, rtol: float | None, atol: float | None) -> None:
    if not isinstance(got, Mapping):
        raise AssertionError(f"{_at(where)}got a {type(got).__name__}, expected a dict with keys "
                             f"{sorted(expected, key=str)}")
    missing, extra = [k for k in expected if k not in got], [k for k in got if k not in expected]
    if missing or extra:
        raise AssertionError(f"{_at(where)}keys differ: missing {missing}, extra {extra}")
    for key, value in expected.items():
        _same(got[key], value, f"{where}[{key!r}]", rtol, atol)


def _same_sequence(got: Any, expected: Sequence, where: str, rtol: float | None, atol: float | None) -> None:
    if isinstance(got, (str, bytes)) or not isinstance(got, (Sequence, torch.Tensor, np.ndarray)):
        raise AssertionError(f"{_at(where)}got a {type(got).__name__}, expected a {type(expected).__name__} of "
                             f"length {len(expected)}")
    if len(got) != len(expected):
        raise AssertionError(f"{_at(where)}length {len(got)}, expected {len(expected)}")
    for index, (item, value) in enumerate(zip(got, expected)):
        _same(item, value, f"{where}[{index}]", rtol, atol)


def _same_number(got: Any, expected: Real, where: str, rtol: float | None, atol: float | None) -> None:
    if isinstance(got, (torch.Tensor, np.ndarray, np.generic)) and torch.as_tensor(got).numel() == 1:
        got = got.item()  # a one-element tensor or array stands for its number
    if isinstance(got, bool) or not isinstance(got, Real):
        raise AssertionError(f"{_at(where)}got {got!r}, expected the number {expected!r}")
    if isinstance(expected, Integral) and isinstance(got, Integral):
        equal = got == expected
    else:
        tolerance = FLOAT_TOLERANCE if rtol is None else {"rtol": rtol, "atol": atol}
        equal = math.isclose(got, expected, rel_tol=tolerance["rtol"], abs_tol=tolerance["atol"])
    if not equal:
        raise AssertionError(f"{_at(where)}got {got!r}, expected {expected!r}")


@dataclass(frozen=True)
class Case:
    """One input of a check: positional arguments for the student's function and the reference alike."""

    args: tuple
    label: str  # shown in feedback, e.g. "ties at the K-th place" (never code)


@dataclass(frozen=True)
class Exercise:
    """A graded exercise: its name (the grade_id of its solution cell), how to make its cases from a seed, the
    cirlib reference that computes the expected values, and how to compare."""

    name: str
    cases: Callable[[int, bool], list[Case]]  # (seed, hidden) -> cases; inputs derive ONLY from the seed
    reference: Callable[..., Any]
    compare: Callable[[Any, Any], None] = same  # raises AssertionError(message) on a mismatch


_REGISTRY: dict[str, Exercise] = {}
"""The exercises by name; the exercises_<topic> modules fill it when they are imported (the contract's registry)."""


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry; a name registered twice is an error (two exercises would share checks)."""
    if exercise.name in _REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} is registered twice ({_REGISTRY[exercise.name].cases.__module__}"
                         f" and {exercise.cases.__module__}). Fix: give one of them another name")
    _REGISTRY[exercise.name] = exercise
    return exercise


def registered() -> list[str]:
    """The names of the registered exercises, sorted."""
    return sorted(_REGISTRY)


def exercise(name: str) -> Exercise:
    """The registered exercise ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"no exercise named {name!r}; registered: {', '.join(registered()) or 'none'}. Fix: import "
                         "the module that registers it (cirlib.assignment imports cirlib's own)")
    return _REGISTRY[name]


def variant_seed() -> int:
    """The seed the cases derive from: the environment's CIRLIB_ASSIGNMENT_SEED (the grader sets it per student
    with --variant-seed-from student_id), else 0."""
    value = os.environ.get(SEED_VARIABLE, "0")
    try:
        return int(value)
    except ValueError:
        raise ConfigError("environment", SEED_VARIABLE, value, "an integer (unset it for the default 0)") from None


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random, use torch's deterministic algorithms and one thread for the block; restore
    the random states, the algorithm setting and the thread count afterwards."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    algorithms, warn_only = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def _call(function: Callable[..., Any], case: Case, seed: int) -> Any:
    """``function`` on a copy of the case's arguments (a function that changes its inputs changes no other call),
    under :func:`deterministic`."""
    with deterministic(seed):
        return function(*copy.deepcopy(case.args))


def check(name: str, answer: Callable[..., Any], hidden: bool = False) -> None:
    """Compare ``answer`` with exercise ``name``'s reference on its public cases (``hidden``: the hidden ones);
    raise :class:`CheckFailed` ("<name>: <case label>: <mismatch>") at the first case that differs or raises."""
    task, seed = exercise(name), variant_seed()
    if not callable(answer):
        raise CheckFailed(f"{name}: expected a function, got {type(answer).__name__}")
    with deterministic(seed):
        cases = task.cases(seed, hidden)
    for case in cases:
        expected = _call(task.reference, case, seed)
        try:
            got = _call(answer, case, seed)
        except Exception as error:  # say what the student's function raised, not where in the harness
            raised = type(error).__name__ + (f": {error}" if str(error) else "")
            raise CheckFailed(f"{name}: {case.label}: your function raised {raised}") from None
        try:
            task.compare(got, expected)
        except AssertionError as error:
            raise CheckFailed(f"{name}: {case.label}: {error}") from None
