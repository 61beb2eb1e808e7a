"""The check harness: comparisons, failure messages, variant seeds, determinism and the registry."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cirlib.assignment.checks import (
    SEED_VARIABLE,
    Case,
    CheckFailed,
    Exercise,
    check,
    deterministic,
    register,
    same,
    variant_seed,
)
from cirlib.util.errors import ConfigError


@pytest.mark.parametrize("got, expected", [
    (torch.tensor([1, 2]), torch.tensor([1, 2])), (torch.tensor([1.0, 2.0]) + 1e-7, torch.tensor([1.0, 2.0])),
    (np.array([0.5, 1.5]), np.array([0.5, 1.5])), ({"R@1": 50.0, "R@5": [1, 2]}, {"R@5": [1, 2], "R@1": 50.0}),
    ((1, 2.0), [1, 2.0]), (torch.tensor(0.25), 0.25), (3, 3), ("a", "a"),
])
def test_same_accepts_equal_values(got, expected):
    same(got, expected)


@pytest.mark.parametrize("got, expected, message", [
    (torch.tensor([1, 3]), torch.tensor([1, 2]), "Tensor-likes are not equal! Mismatched elements: 1 / 2"),
    ([1, 2], torch.tensor([1, 2]), "got a list, expected a Tensor of shape (2,)"),
    ({"R@1": 50.0}, {"R@1": 50.0, "R@5": 60.0}, "keys differ: missing ['R@5'], extra []"),
    ({"R@1": 50.0, "R@5": 61.0}, {"R@1": 50.0, "R@5": 60.0}, "at ['R@5']: got 61.0, expected 60.0"),
    ([1, [2, 3]], [1, [2, 4]], "at [1][1]: got 3, expected 4"),
    ([1], [1, 2], "length 1, expected 2"), (2, 3, "got 2, expected 3"), (True, 1, "got True, expected the number 1"),
    (torch.tensor([1.0, 2.0]), torch.tensor([1, 2]), "dtype"),
])
def test_same_names_the_mismatch(got, expected, message):
    with pytest.raises(AssertionError) as error:
        same(got, expected)
    assert message in str(error.value) and "\n" not in str(error.value)


def cases(seed: int, hidden: bool) -> list[Case]:
    generator = torch.Generator().manual_seed(2 * seed + int(hidden))
    return [Case((torch.rand(3, generator=generator),), "hidden rows" if hidden else "public rows")]


DOUBLE = register(Exercise("double_for_test_checks", cases, lambda x: 2 * x))


def stub(x):
    raise NotImplementedError()


def test_check_raises_check_failed_naming_exercise_case_and_mismatch():
    check(DOUBLE.name, lambda x: x + x)
    check(DOUBLE.name, lambda x: x + x, hidden=True)
    with pytest.raises(CheckFailed, match=r"^double_for_test_checks: public rows: Tensor-likes are not close!"):
        check(DOUBLE.name, lambda x: x)
    with pytest.raises(CheckFailed, match=r"^double_for_test_checks: hidden rows: your function raised "
                                          r"NotImplementedError$"):
        check(DOUBLE.name, stub, hidden=True)
    with pytest.raises(ValueError, match="no exercise named 'nope'"):
        check("nope", lambda x: x)


def test_a_function_that_changes_its_input_does_not_change_the_expected_value():
    def doubling_in_place(x):
        return x.mul_(2)

    check(DOUBLE.name, doubling_in_place)


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="exercise 'double_for_test_checks' is registered twice"):
        register(Exercise(DOUBLE.name, cases, lambda x: x))


def test_the_variant_seed_comes_from_the_environment_and_changes_the_cases(monkeypatch):
    assert variant_seed() == 0
    monkeypatch.setenv(SEED_VARIABLE, "17")
    assert variant_seed() == 17
    assert not torch.equal(cases(17, False)[0].args[0], cases(0, False)[0].args[0])
    assert not torch.equal(cases(17, True)[0].args[0], cases(17, False)[0].args[0])
    seen = []
    check(DOUBLE.name, lambda x: seen.append(x.clone()) or 2 * x)
    assert torch.equal(seen[0], cases(17, False)[0].args[0])
    monkeypatch.setenv(SEED_VARIABLE, "seventeen")
    with pytest.raises(ConfigError, match="CIRLIB_ASSIGNMENT_SEED' is 'seventeen'; expected an integer"):
        variant_seed()


def test_deterministic_seeds_everything_and_restores_the_state():
    threads, algorithms = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random.seed(5)
    after = random.random()
    random.seed(5)
    with deterministic(3):
        first = (random.random(), np.random.rand(), torch.rand(1).item())
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    with deterministic(3):
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert random.random() == after
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, algorithms)
