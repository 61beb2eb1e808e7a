"""Job configurations: plain dataclasses, read from YAML, printed into every log and results file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
"""Numeric precisions a job can ask for (``cirlib.encoders.device`` says what each does on each device)."""


def check_precision(precision: str) -> str:
    """``precision`` itself, or a ValueError naming the valid ones (configs call this when built)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """``cls`` from the YAML file at ``path`` (optional), then ``overrides`` (None values ignored).

    An unknown key is an error naming the file, the key and the valid keys, so a typo never
    silently falls back to a default.
    """
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of {cls.__name__} fields, found {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = f"{path}: " if path is not None else ""
        raise ValueError(f"{where}unknown {cls.__name__} field(s) {', '.join(unknown)}; "
                         f"valid fields: {', '.join(sorted(known))}")
    return cls(**values)
