"""Every shipped YAML config loads into its job's dataclass (a typo in a field name is an error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlib.experiments.jobs import JOBS, load_job_config
from cirlib.train.pretrain import PretrainConfig
from cirlib.util.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_into_its_job(path):
    if path.stem == "pretrain_synthclip":
        assert load_config(PretrainConfig, path).steps > 0
        return
    job, config = load_job_config(path)
    assert job is JOBS[config.kind]
    assert isinstance(config, job.config)


def test_an_unknown_kind_names_the_known_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: nonsense\n")
    with pytest.raises(ValueError, match="kind.*one of fusion, pic2word, searle, lincir"):
        load_job_config(path)
