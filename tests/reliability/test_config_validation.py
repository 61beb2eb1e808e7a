"""Configs are validated whole when they are loaded, before any work: every field of every job's config,
with one-line errors that name the file, the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import pytest
import yaml

from cirlib.apps.demo import DemoConfig
from cirlib.cli import main
from cirlib.experiments.jobs import load_job_config
from cirlib.experiments.reproduce import ReproduceConfig
from cirlib.inversion import LinCIRConfig, Pic2WordConfig, SearleConfig
from cirlib.train.pretrain import PretrainConfig
from cirlib.train.pseudo_triplets import PseudoTripletConfig
from cirlib.train.stage1 import Stage1Config
from cirlib.train.stage2 import FusionTrainConfig
from cirlib.util.config import _kinds, _rule, load_config
from cirlib.util.errors import ConfigError, FileError

JOB_CONFIGS = (FusionTrainConfig, PretrainConfig, Pic2WordConfig, SearleConfig, LinCIRConfig)
ALL_CONFIGS = JOB_CONFIGS + (DemoConfig, ReproduceConfig, PseudoTripletConfig)
REQUIRED = {ReproduceConfig: {"dataset": "cirr", "method": "sum", "data_root": "somewhere"}}
WRONG_TYPE = {int: "abc", float: "fast", str: 123, bool: 3, list: {"a": 1}, dict: [1, 2]}


def bad_values(cls: type) -> list[tuple[str, object]]:
    """(field, value) pairs every field must refuse: a value of the wrong type, and one outside its rule."""
    cases = []
    for field in dataclasses.fields(cls):
        kinds, _ = _kinds(typing.get_type_hints(cls)[field.name])
        rule = _rule(cls, field.name)
        cases.append((field.name, WRONG_TYPE[kinds[0]]))
        if rule.choices is not None or rule.pattern is not None:
            cases.append((field.name, "no such choice"))
        if rule.items is not None:
            cases.append((field.name, ["no-such-item"]))
        if rule.minimum is not None:
            cases.append((field.name, rule.minimum - 1))
        if rule.above is not None:
            cases.append((field.name, rule.above))
        if rule.maximum is not None:
            cases.append((field.name, rule.maximum + 1))
    return cases


CASES = [(cls, name, value) for cls in ALL_CONFIGS for name, value in bad_values(cls)]


@pytest.mark.parametrize(("cls", "name", "value"), CASES,
                         ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in CASES])
def test_every_field_refuses_a_wrong_type_and_an_out_of_range_value(tmp_path, cls, name, value):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**REQUIRED.get(cls, {}), name: value}))
    with pytest.raises(ConfigError) as caught:
        load_config(cls, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: field {name!r}") and "expected" in message and "\n" not in message


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_every_default_is_valid(cls):
    config = cls(**REQUIRED.get(cls, {}))
    assert dataclasses.asdict(cls(**dataclasses.asdict(config))) == dataclasses.asdict(config)


# The reproducers of the issue: (YAML text, expected fragment of the error, or the coerced field values).
REPRODUCERS = [
    ("lr: 1e-3", {"lr": 0.001}),            # PyYAML reads 1e-3 as a string: unambiguous, coerced
    ('epochs: "3"', {"epochs": 3}),
    ("epochs: 2.5", "field 'epochs' is 2.5; expected an integer >= 1"),
    ("epochs: 0", "field 'epochs' is 0; expected an integer >= 1"),
    ("epochs: -1", "field 'epochs' is -1"),
    ("batch_size: 0", "field 'batch_size' is 0; expected an integer >= 1"),
    ("batch_size: -4", "field 'batch_size' is -4"),
    ("fusion_options: [1, 2]", "field 'fusion_options' is [1, 2]; expected a mapping"),
    ("fusion: moe\nfusion_options: {top_k: two}", "field 'fusion_options.top_k' is 'two'; expected an integer"),
    ("fusion_options: {hiden_dim: 5}", "field 'fusion_options.hiden_dim' is 5; expected one of the keys"),
    ("seed: abc", "field 'seed' is 'abc'; expected an integer >= 0"),
    ("device: tpu9", "field 'device' is 'tpu9'; expected auto, cpu, mps, cuda or cuda:<index>"),
    ("weight_decay: -1", "field 'weight_decay' is -1; expected a number >= 0"),
    ("selection_metric: R@7", "field 'selection_metric' is 'R@7'; expected one of fashioniq's validation metrics"),
    ("dataset: cirr\nselection_metric: avg", "field 'selection_metric' is 'avg'; expected one of cirr's"),
    ("pseudo_triplets: {eps_low: 0.99, eps_high: 0.9}", "field 'pseudo_triplets.eps_low' is 0.99"),
    ("lr: .nan", "field 'lr' is nan"),
    ("kind: trainer", "field 'kind' is 'trainer'; expected one of fusion, pic2word, searle, lincir"),
]


@pytest.mark.parametrize(("text", "expected"), REPRODUCERS, ids=[t for t, _ in REPRODUCERS])
def test_the_reported_bad_configs_fail_when_loaded_with_the_file_and_field_named(tmp_path, text, expected):
    path = tmp_path / "train.yaml"
    path.write_text(text + "\n")
    if isinstance(expected, dict):
        _, config = load_job_config(path)
        assert {k: getattr(config, k) for k in expected} == expected
        assert all(type(getattr(config, k)) is type(v) for k, v in expected.items())
        return
    with pytest.raises(ConfigError, match=None) as caught:
        load_job_config(path)
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value)


@pytest.mark.parametrize("text", ["epochs: [1\n", "a: b: c\n", "lr: 1\n  epochs: 2\n"])
def test_malformed_yaml_is_a_one_line_error_with_its_line(tmp_path, text):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(FileError, match=r"is not valid YAML at line \d+, column \d+") as caught:
        load_job_config(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_command_line_override_is_named_as_such(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 3\n")
    with pytest.raises(ConfigError, match=r"^command line: field 'epochs' is 0"):
        load_job_config(path, epochs=0)


def test_cirlib_train_refuses_a_bad_config_before_any_work(tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "run"
    path = tmp_path / "train.yaml"
    path.write_text(f"data_root: {tmp_path / 'nowhere'}\ncache: {cache}\nout: {out}\nselection_metric: R@7\n")
    assert main(["train", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "selection_metric" in error and "R@7" in error
    assert not cache.exists() and not out.exists()


def test_nested_and_coerced_values_keep_only_the_keys_the_user_wrote():
    config = FusionTrainConfig(pseudo_triplets={"every_k": "2"}, fusion="moe", fusion_options={"top_k": 1.0})
    assert config.pseudo_triplets == {"every_k": 2} and config.fusion_options == {"top_k": 1}


def test_shipped_configs_are_unchanged_by_validation():
    for path in sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        cls = PretrainConfig if path.stem.startswith("pretrain") else load_job_config(path)[1].__class__
        config = load_config(cls, path)
        absolute = {k: os.path.abspath(raw[k]) for k in ("data_root", "cache")
                    if cls in (FusionTrainConfig, Stage1Config) and k in raw}
        assert {k: getattr(config, k) for k in raw} == raw | absolute, path.name  # fusion/stage-1 runs save them absolute
