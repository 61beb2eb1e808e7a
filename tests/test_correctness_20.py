"""Issue 20, part 2: correctness found while reading.

One-line errors instead of KeyError/IndexError for a sweep's metric and the explorer's query; every third-party
import declared; SEARLE's two-order FashionIQ protocol wired into the inversion evaluation; the paper rows
``cirlib reproduce`` cannot reach and the WeiMoCIR G/14 keys; the dataset problems that were not DatasetErrors.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from cirlib.cli import main, one_line
from cirlib.data import CIRR, DatasetError
from cirlib.encoders import load_encoder
from cirlib.encoders.clip_model import build_tokenizer
from cirlib.experiments.paper_numbers import (
    G14_NOTE,
    METHODS,
    PAPER_RESULTS,
    QUOTED_ONLY,
    default_weights,
    paper_result,
    paper_weights,
)
from cirlib.experiments.reproduce_config import MissingDatasetError
from cirlib.features import FeatureCache, fashioniq_features
from cirlib.inversion import PromptEncoder
from cirlib.inversion import evaluate as inversion_evaluate
from cirlib.inversion.evaluate import compose_split, evaluate_inversion
from cirlib.inversion.inject import token_embeddings
from cirlib.util.errors import ConfigError
from cirlib.viz.widgets import Panel, top_results
from cirlib.weimocir.sweeps import SweepResult, best_cell
from tests.helpers import TINY_CLIP, random_split, tiny_model_dir
from tests.test_readers import cirr_root, fiq_root  # noqa: F401  (fixtures: tiny dataset trees)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "a photo of $ that {}"


# --- user errors as one line ------------------------------------------------------------------------------------

def test_an_unknown_sweep_metric_and_an_out_of_range_query_are_one_line_config_errors():
    result = SweepResult(np.array([0.0, 1.0]), np.array([0.0]), {"R@1": np.zeros((2, 1))}, "cirr", "slides")
    with pytest.raises(ConfigError) as metric_error:
        best_cell(result, "Avg")
    with pytest.raises(ConfigError) as query_error:
        top_results(Panel(result, random_split("cirr", queries=14)), 0.0, 0.0, 14)
    for error, says in ((metric_error, "field 'metric' is 'Avg'; expected one of its metrics: R@1"),
                        (query_error, "field 'query' is 14; expected a query index from 0 to 13 (14 queries)")):
        line = one_line(error.value)
        assert says in line and "\n" not in line and "unexpected" not in line


# --- declared dependencies --------------------------------------------------------------------------------------

CARRIED = {"IPython": "ipywidgets", "huggingface_hub": "open-clip-torch", "triton": "torch"}
"""Modules cirlib imports that a declared package requires and exists to serve: IPython is the kernel side of
ipywidgets, huggingface_hub is open_clip's hub (cirlib only asks it where open_clip's weights are), triton is
torch's own GPU compiler (on Linux; cirlib.index.fused runs only there)."""
CONDA_NAMES = {"pytorch": "torch"}


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9_.\-]+", spec.strip()).group())


def third_party_imports() -> set[str]:
    """Top-level modules that cirlib's own files import, other than the standard library and cirlib."""
    modules = set()
    for path in (ROOT / "cirlib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"cirlib"}


def pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {requirement_name(spec) for spec in project["dependencies"]}


def environment_names() -> set[str]:
    names = set()
    for entry in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            if not spec.startswith("-"):
                name = requirement_name(spec)
                names.add(CONDA_NAMES.get(name, name))
    return names


@functools.cache
def distribution(module: str) -> str:
    """The installed distribution that provides ``module`` (the mapping takes about a second to build)."""
    (name, *_) = _module_distributions()[module]
    return canonical(name)


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@pytest.mark.parametrize("declared", [pyproject_names, environment_names], ids=["pyproject", "environment"])
def test_every_third_party_import_of_cirlib_is_declared(declared):
    """pandas once arrived only through seaborn: a module imported by cirlib must be a declared dependency, or
    one that a declared package requires for the job cirlib uses it for (``CARRIED``)."""
    names = declared()
    modules = third_party_imports()
    assert "pandas" in modules
    undeclared = {m for m in modules if m not in CARRIED and distribution(m) not in names}
    assert not undeclared, f"imported by cirlib but not declared: {sorted(undeclared)}"
    for module, carrier in CARRIED.items():
        assert carrier in names and distribution(module) not in names
        required = [requirement_name(r) for r in importlib.metadata.requires(carrier) or [] if "extra ==" not in r]
        assert distribution(module) in required, f"{carrier} does not require {module}"


# --- SEARLE's two-order FashionIQ protocol ----------------------------------------------------------------------

@pytest.fixture
def fashioniq_setup(tmp_path, fiq_root):  # noqa: F811
    """Features of the tiny FashionIQ dress val split, its prompt encoder, an inverter that always gives the word
    "square", and the text encoder's features of texts with "square" in the placeholder."""
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "clip")[0]), device="cpu")
    features = fashioniq_features(encoder, FeatureCache(tmp_path / "cache"), fiq_root, "dress")
    tokenizer = build_tokenizer(TINY_CLIP)
    (square,) = tokenizer.encode(" square ")
    word = token_embeddings(encoder.model)[square]

    def plain(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            encoded = encoder.model.encode_text(tokenizer([TEMPLATE.replace("$", "square").format(t) for t in texts]))
        return F.normalize(encoded, dim=-1)
    return features, PromptEncoder.from_encoder(encoder), lambda f: word.expand(len(f), -1), plain


def test_searle_protocol_averages_the_normalised_queries_of_both_caption_orders(fashioniq_setup):
    features, prompts, invert, plain = fashioniq_setup
    assert features.extra["captions"][1] == ("is red.", "has shorter sleeves?")
    first = ["Is solid black with no sleeves and is black with straps", "Is red and has shorter sleeves",
             "Is longer and is more elegant and blue"]
    second = ["Is black with straps and is solid black with no sleeves", "Has shorter sleeves and is red",
              "Is more elegant and blue and is longer"]
    assert features.query_texts == first
    single = compose_split(features, prompts, invert, TEMPLATE).text
    both = compose_split(features, prompts, invert, TEMPLATE, fashioniq_orders="both").text
    torch.testing.assert_close(single, plain(first), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both, F.normalize(plain(first) + plain(second), dim=-1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both, single, atol=1e-3)
    with pytest.raises(ConfigError, match="field 'fashioniq_orders' is 'reversed'"):
        compose_split(features, prompts, invert, TEMPLATE, fashioniq_orders="reversed")


def test_evaluate_inversion_applies_both_orders_to_fashioniq_only(fashioniq_setup, monkeypatch):
    features, prompts, invert, _ = fashioniq_setup
    scored = []
    monkeypatch.setattr(inversion_evaluate, "evaluate_methods", lambda composed, methods: scored.append(composed) or {})
    evaluate_inversion(({"dress": features}, features, features), prompts, {"square": invert}, TEMPLATE,
                       fashioniq_orders="both")
    ((fiq, cirr, circo),) = scored
    torch.testing.assert_close(fiq["dress"].text, compose_split(features, prompts, invert, TEMPLATE, "both").text)
    for split in (cirr, circo):  # CIRR and CIRCO have one text per query
        torch.testing.assert_close(split.text, compose_split(features, prompts, invert, TEMPLATE).text)


# --- paper numbers ----------------------------------------------------------------------------------------------

def test_every_quoted_method_is_either_reproducible_or_declared_quoted_only():
    quoted = {method for _, method, _ in PAPER_RESULTS}
    assert quoted - set(METHODS) == set(QUOTED_ONLY) and not set(QUOTED_ONLY) & set(METHODS)
    readme = (ROOT / "README.md").read_text()
    assert "`cirlib.experiments.paper_numbers.QUOTED_ONLY`" in readme
    with pytest.raises(SystemExit) as exit_code:
        main(["reproduce", "--dataset", "cirr", "--method", "searle", "--data-root", "nowhere"])
    assert exit_code.value.code == 2


def test_the_weimocir_g14_row_is_keyed_under_vit_g_14_and_vit_bigg_14_with_the_assumption():
    for dataset, metric, value in (("fashioniq", "avg R@10", 37.03), ("cirr", "R@1", 31.04)):
        for model, tag in (("ViT-g-14", "laion2b_s34b_b88k"), ("ViT-bigG-14", "laion2b_s39b_b160k")):
            row = paper_result(dataset, "weimocir", model, tag)
            assert row.metrics[metric] == value and row.note == G14_NOTE
        assert [str(w) for w in paper_weights(dataset, "weimocir")][-2:] == ["ViT-g-14 laion2b_s34b_b88k",
                                                                              "ViT-bigG-14 laion2b_s39b_b160k"]
    assert "1.37B is ViT-g-14's size" in G14_NOTE
    assert str(default_weights("weimocir", "ViT-g-14")) == "ViT-g-14 laion2b_s34b_b88k"
    assert paper_result("cirr", "weimocir", "ViT-g-14", "laion2b_s12b_b42k") is None


# --- dataset problems are DatasetErrors -------------------------------------------------------------------------

def test_an_image_the_cirr_split_does_not_list_is_a_dataset_error(cirr_root):  # noqa: F811
    reader = CIRR(cirr_root)
    with pytest.raises(DatasetError) as error:
        reader.image_path("not-an-image", "val")
    assert error.value.path == cirr_root / "cirr" / "image_splits" / "split.rc2.val.json"
    assert "image 'not-an-image' is not listed" in str(error.value) and "Fix: pass an image of the val split" in \
        str(error.value)


def test_a_missing_dataset_is_a_dataset_error_printed_as_one_line(tmp_path, capsys):
    arguments = ["reproduce", "--dataset", "circo", "--method", "sum", "--data-root", str(tmp_path / "none")]
    assert main(arguments) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {tmp_path / 'none'}: circo not found there") and \
        "Fix: download it from https://github.com/miccunifi/CIRCO" in line
    with pytest.raises(MissingDatasetError) as error:
        main(["--debug", *arguments])
    assert isinstance(error.value, DatasetError) and isinstance(error.value, FileNotFoundError)
