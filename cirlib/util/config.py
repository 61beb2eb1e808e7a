"""Job configurations: plain dataclasses, read from YAML, validated whole before any work starts.

A config field is declared with :func:`setting` (its default and its allowed range or choices); the
dataclass calls :func:`validate` in ``__post_init__``, so a config built in Python, read from YAML or
overridden on the command line is checked the same way. Every field's type and range is checked, what
is unambiguous is coerced (``lr: 1e-3``, a string to PyYAML, becomes 0.001; ``epochs: "3"`` becomes 3),
and anything else is a one-line :class:`~cirlib.util.errors.ConfigError` naming the file, the field, the value
and what is allowed. This module does not import torch, so ``cirlib synth`` stays quick to start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cirlib.util.errors import ConfigError, FileError

T = TypeVar("T")

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
"""Numeric precisions a job can ask for (``cirlib.util.device`` says what each does on each device)."""

DEVICE = {"pattern": r"auto|cpu|mps|cuda(:\d+)?", "meaning": "auto, cpu, mps, cuda or cuda:<index>"}
"""The rule of a config's ``device``: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``mps``, ``cuda[:N]``."""

_INTEGER = re.compile(r"[+-]?\d+")
_NOT_VALID = object()


def json_sha256(value: Any) -> str:
    """sha256 of ``value`` as JSON with sorted keys: the same data always gives the same hex digest (the key of
    configs, settings, cache entries and metadata)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def check_precision(precision: str) -> str:
    """``precision`` itself, or a ValueError naming the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a field allows beyond its type: an inclusive range, an exclusive lower bound, choices, a pattern."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None          # strictly greater than
    choices: Sequence[Any] | None = None
    pattern: str | None = None          # a full match, for strings
    items: Sequence[Any] | None = None  # choices for every item of a list
    meaning: str | None = None          # the allowed values in words, where the rule alone reads badly

    def describe(self, kind: str) -> str:
        """The allowed values in words ("an integer >= 1")."""
        if self.meaning is not None:
            return self.meaning
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern is not None:
            return f"{kind} matching {self.pattern}"
        if self.items is not None:
            return f"{kind} of items from " + ", ".join(map(str, self.items))
        bounds = [f">= {self.minimum:g}" if self.minimum is not None else "",
                  f"> {self.above:g}" if self.above is not None else "",
                  f"<= {self.maximum:g}" if self.maximum is not None else ""]
        return " ".join([kind, " and ".join(b for b in bounds if b)]).strip()

    def allows(self, value: Any) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return False
        if self.items is not None and any(item not in self.items for item in value):
            return False
        if isinstance(value, (int, float)):
            return not ((self.minimum is not None and value < self.minimum)
                        or (self.maximum is not None and value > self.maximum)
                        or (self.above is not None and value <= self.above))
        return True


def setting(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, **rule: Any) -> Any:
    """A dataclass field with a default (or a ``factory`` for lists and dicts) and the :class:`Rule` it obeys."""
    metadata = {"rule": Rule(**rule)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_KIND_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a mapping"}


def _coerce(value: Any, kind: type) -> tuple[bool, Any]:
    """(ok, value as ``kind``): numbers from unambiguous strings, integral floats to int, int to float."""
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):  # YAML's true/false are not numbers, strings, lists or mappings
        return False, value
    if kind is int:
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return True, int(value)
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if kind is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False, value
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        return ok, float(value) if ok else value
    return isinstance(value, kind), value


def _kinds(hint: Any) -> tuple[list[type], bool]:
    """(the plain types a hint allows, whether None is allowed): ``int | None`` -> ([int], True)."""
    options = typing.get_args(hint) or (hint,)
    plain = [typing.get_origin(o) or o for o in options if o is not type(None)]
    return plain, type(None) in options


def _rule(cls: type, name: str) -> Rule:
    """The rule of field ``name``: declared on ``cls`` or, when a subclass only changes the default, on a base."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "rule" in declared.metadata:
            return declared.metadata["rule"]
    return Rule()


def check_value(owner: str, name: str, value: Any, hint: Any, rule: Rule = Rule()) -> Any:
    """``value`` coerced to the type ``hint`` allows and checked against ``rule``; else a ConfigError
    naming ``owner`` (the class, later the file) and the field ``name``."""
    kinds, optional = _kinds(hint)
    if value is None and optional:
        return None
    coerced = next((c for ok, c in (_coerce(value, kind) for kind in kinds) if ok), _NOT_VALID)
    if coerced is _NOT_VALID or not rule.allows(coerced):
        kind_text = " or ".join(_KIND_WORDS.get(k, getattr(k, "__name__", str(k))) for k in kinds)
        raise ConfigError(owner, name, value, rule.describe(kind_text) + (" (or null)" if optional else ""))
    return coerced


def validate(config: Any) -> None:
    """Check (and coerce in place) every field of the dataclass instance ``config`` against its type and rule.

    Raises a ConfigError whose source is the class name; :func:`load_config` replaces it with the file.
    """
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(config):
        value = check_value(cls.__name__, field.name, getattr(config, field.name), hints[field.name],
                            _rule(cls, field.name))
        object.__setattr__(config, field.name, value)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """The mapping in a YAML config file; a missing, malformed or non-mapping file is a one-line FileError."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(path, "config file not found", "check the path (configs/ holds the shipped ones)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise FileError(path, f"is not valid YAML{where} ({problem})",
                        "fix the syntax there (indentation, a missing ':' or an unclosed bracket)") from None
    except UnicodeDecodeError:
        raise FileError(path, "is not UTF-8 text", "point --config at a YAML file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise FileError(path, f"holds {type(loaded).__name__}, not a mapping of field: value lines",
                        "write one `field: value` per line (see configs/)")
    return loaded


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """``cls`` from the YAML file at ``path`` (optional), then ``overrides`` (None values ignored), validated.

    An unknown key is an error naming the file, the key and the valid keys, so a typo never silently
    falls back to a default; a bad value names the file (or "command line") and the field.
    """
    values = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        where = f"{path}: " if path is not None else ""
        raise ValueError(f"{where}unknown {cls.__name__} field(s) {', '.join(map(str, unknown))}; "
                         f"valid fields: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except ConfigError as error:
        top = error.field.split(".")[0]
        source = "command line" if top in given else str(path) if path is not None else error.source
        raise ConfigError(source, error.field, error.value, error.expected) from None


def check_mapping(owner: str, name: str, mapping: dict, hints: dict[str, Any]) -> dict:
    """``mapping`` (a config field holding options) with each value coerced to its hint; an unknown key or a
    value of the wrong type is a ConfigError naming "name.key"."""
    checked = {}
    for key, value in mapping.items():
        if key not in hints:
            raise ConfigError(owner, f"{name}.{key}", value, f"one of the keys {', '.join(hints)}")
        checked[key] = check_value(owner, f"{name}.{key}", value, hints[key])
    return checked


def nested(config: Any, name: str, cls: type) -> None:
    """Validate the mapping in ``config``'s field ``name`` as a ``cls`` (errors name "name.field"), keeping its keys."""
    owner = type(config).__name__
    value = check_mapping(owner, name, getattr(config, name), typing.get_type_hints(cls))
    try:
        built = cls(**value)
    except ConfigError as error:
        raise ConfigError(owner, f"{name}.{error.field}", error.value, error.expected) from None
    object.__setattr__(config, name, {key: getattr(built, key) for key in value})
