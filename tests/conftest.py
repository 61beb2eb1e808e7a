"""Shared fixtures: one small synthetic benchmark (the ``tiny`` preset) per test session (built in about 10 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data.synth.config import preset


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(folder, manifest) of the ``tiny`` preset's benchmark, seed 0, rendered with two processes."""
    out = tmp_path_factory.mktemp("synth") / "small"
    return out, prepare_benchmark(out, preset("tiny", seed=0), workers=2)
