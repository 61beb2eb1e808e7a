"""The settings of a ``cirlib reproduce`` run: :class:`ReproduceConfig`, its one-line checks (options that do not fit
together, the dataset's folder, a checkpoint against ``--method``, ``--dataset`` and the encoder settings) and its
resolution to the user's, else the checkpoint's, else the paper's settings; and the run's name, a hash of them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cirlib.data import DatasetError
from cirlib.encoders.loading import BUNDLED
from cirlib.encoders.transforms import PREPROCESS_KINDS
from cirlib.experiments.paper_numbers import (
    METHODS,
    PAPER_DATASETS,
    PAPER_SETTINGS,
    TRAINED_METHODS,
    default_weights,
)
from cirlib.metrics.protocols import PROTOCOLS, protocol
from cirlib.train.checkpoint import read_record
from cirlib.util.config import DEVICE, json_sha256, setting, validate
from cirlib.util.errors import CirlibError, FileError

DOWNLOADS = {
    "fashioniq": ("https://github.com/XiaoxiaoGuo/fashion-iq", "captions/, image_splits/, images/"),
    "cirr": ("https://github.com/Cuberick-Orz/CIRR", "cirr/captions/, cirr/image_splits/, train/, dev/, test1/"),
    "circo": ("https://github.com/miccunifi/CIRCO", "annotations/, COCO2017_unlabeled/"),
}
FIRST_FOLDER = {"fashioniq": "captions", "cirr": "cirr", "circo": "annotations"}
SPLITS = {"fashioniq": ("val",), "cirr": ("val", "test1"), "circo": ("val", "test")}
"""The splits reproduce runs: val is evaluated; CIRR test1 and CIRCO test (no public targets) are submitted."""
METHOD_FUSION = {"combiner": "combiner", "clip-cd": "bilinear", "moe": "moe"}
"""The ``fusion`` a checkpoint of each trained method records (CLIP-CD's is the bilinear Combiner)."""
ENCODER_FIELDS = ("model", "pretrained", "preprocess", "quick_gelu")
"""The settings that make the features: a trained fusion's checkpoint fixes them."""
UNHASHED = ("cache", "device", "results")
"""Settings that do not change the numbers (where it runs, where files go): not in the result's name."""


@dataclass
class ReproduceConfig:
    """One reproduction run; printed first and saved with the results. None: the checkpoint's, else the paper's."""

    dataset: str = setting(choices=PAPER_DATASETS)
    method: str = setting(choices=METHODS)
    data_root: str = setting()
    model: str | None = None        # an open_clip architecture (with pretrained) or a model folder
    pretrained: str | None = None   # an open_clip tag or a checkpoint file; a model folder needs none
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    quick_gelu: bool | None = None  # None: the checkpoint's, else as the pretrained tag's config says
    on_missing: str = setting("error", choices=("error", "skip"))
    split: str = setting("val", choices=("val", "test1", "test"))
    alpha: float = setting(0.8, minimum=0, maximum=1)
    beta: float = setting(0.1, minimum=0, maximum=1)
    captions: str | None = None
    checkpoint: str | None = None
    cache: str = "data/cache"
    device: str = setting("auto", **DEVICE)
    results: str = "results"        # where submission files (and, from the CLI, the result file) go

    def __post_init__(self) -> None:
        validate(self)


class MissingDatasetError(DatasetError, FileNotFoundError):
    """The dataset is not where the user said: a ``DatasetError`` (one line) whose fix names the download page."""


def check_dataset(dataset: str, root: Path | str) -> Path:
    """``root`` if it holds the dataset's first expected folder, else a one-line MissingDatasetError."""
    root = Path(root)
    if not (root / FIRST_FOLDER[dataset]).is_dir():
        url, layout = DOWNLOADS[dataset]
        raise MissingDatasetError(root, f"{dataset} not found there (expected {layout})",
                                  f"download it from {url} and see data/README.md for the layout")
    return root


def _check_options(config: ReproduceConfig) -> None:
    """One-line errors for options that do not fit together."""
    if config.method == "weimocir" and not config.captions:
        raise CirlibError(f"weimocir needs --captions: the gallery captions file (FashionIQ: a folder of "
                          f"<category>.{config.split}.json), format in data/README.md")
    if config.method in TRAINED_METHODS and not config.checkpoint:
        raise CirlibError(f"{config.method} needs --checkpoint: the best.safetensors of a `cirlib train` run on "
                          f"{config.dataset} (configs/clip4cir_rn50x4_*.yaml, configs/clipcd_rn50x4_fashioniq.yaml)")
    rules = protocol(config.dataset)
    if config.method in TRAINED_METHODS and not rules.training_split:
        trainable = " and ".join(p.label for p in PROTOCOLS.values() if p.training_split)
        raise CirlibError(f"{rules.label} has no training split: trained methods are evaluated on {trainable}")
    if config.split not in SPLITS[config.dataset]:
        raise CirlibError(f"--split {config.split} is not a {config.dataset} split reproduce runs: choose "
                          f"{' or '.join(SPLITS[config.dataset])}")


def _carries_weights(model: str) -> bool:
    """Whether ``model`` holds its weights (bundled, a model folder, hf-hub:/local-dir:) and needs no pretrained."""
    return model in BUNDLED or (Path(model) / "open_clip_config.json").is_file() or \
        model.startswith(("hf-hub:", "local-dir:"))


def checkpoint_record(config: ReproduceConfig) -> dict | None:
    """The record of ``--checkpoint`` (trained methods), refused in one line when its fusion or dataset is not
    the run's."""
    if config.method not in TRAINED_METHODS:
        return None
    path = Path(config.checkpoint)
    if path.suffix != ".safetensors":
        raise FileError(path, "is not a fusion checkpoint of `cirlib train` (a .safetensors file); a CLIP4Cir stage-1 "
                        "file (tuned_clip_best.pt) holds an encoder, not a fusion",
                        "pass an encoder file as --pretrained (with --model RN50x4 --quick-gelu), and the "
                        "best.safetensors of a `cirlib train` run as --checkpoint")
    record = read_record(path, required=("epoch", "config", "embed_dim"))
    trained, fusion = record["config"], METHOD_FUSION[config.method]
    if trained.get("fusion") != fusion:
        methods = [m for m, f in METHOD_FUSION.items() if f == trained.get("fusion")]
        fix = f"pass --method {methods[0]}" if methods else f"pass a checkpoint of a {fusion!r} run"
        raise FileError(path, f"holds a {trained.get('fusion')!r} fusion, but --method {config.method} is a "
                        f"{fusion!r} fusion", fix)
    if trained.get("dataset") != config.dataset:
        raise FileError(path, f"was trained on {trained.get('dataset')}, not {config.dataset}",
                        f"pass a checkpoint of a run on {config.dataset}")
    return record


def _same(given: object, recorded: object) -> bool:
    """Equal settings, or two spellings of one file or folder."""
    if given == recorded:
        return True
    paths = [Path(str(value)) for value in (given, recorded) if value is not None]
    return len(paths) == 2 and all(p.exists() for p in paths) and os.path.samefile(*paths)


def _checkpoint_settings(config: ReproduceConfig, record: dict) -> dict:
    """The encoder settings a checkpoint was trained with; a different one the user gave is a one-line error."""
    trained = record["config"]
    for field in ENCODER_FIELDS:
        given, recorded = getattr(config, field), trained.get(field)
        if given is not None and not _same(given, recorded):
            flag = "--" + field.replace("_", "-")
            raise FileError(config.checkpoint, f"was trained on features of {field} {recorded!r}, not {flag} {given!r}",
                            f"drop {flag} (the checkpoint's is the default) or pass a checkpoint trained with it")
    return {field: trained.get(field) for field in ENCODER_FIELDS}


def _paper_settings(config: ReproduceConfig) -> dict:
    """The paper's model, weights and preprocessing where the user gave none; never random weights."""
    model = config.model or default_weights(config.method, None).model
    pretrained = config.pretrained
    if pretrained is None and not _carries_weights(model):
        weights = default_weights(config.method, model)
        if weights is None:
            used = ", ".join(map(str, PAPER_SETTINGS[config.method].weights))
            raise CirlibError(f"--model {model} is an open_clip architecture without weights: pass --pretrained (an "
                              f"open_clip tag or a checkpoint file), or a model folder as --model (the paper used "
                              f"{used})")
        pretrained = weights.pretrained
    preprocess = config.preprocess or PAPER_SETTINGS[config.method].preprocess
    return {"model": model, "pretrained": pretrained, "preprocess": preprocess, "quick_gelu": config.quick_gelu}


def resolve_settings(config: ReproduceConfig) -> ReproduceConfig:
    """``config`` with every setting the run uses filled in: the user's, else the checkpoint's, else the paper's.

    Checks first, each a one-line error: options that do not fit together, the dataset's folder, and a
    checkpoint against ``--method``, ``--dataset`` and the encoder settings given.
    """
    _check_options(config)
    check_dataset(config.dataset, config.data_root)
    record = checkpoint_record(config)
    settings = _paper_settings(config) if record is None else _checkpoint_settings(config, record)
    return replace(config, **settings)


def settings_hash(config: ReproduceConfig) -> str:
    """A short hash of the settings that change the numbers (all but :data:`UNHASHED`)."""
    settings = {name: value for name, value in asdict(config).items() if name not in UNHASHED}
    return json_sha256(settings)[:8]


def run_name(config: ReproduceConfig) -> str:
    """The name of a run's files: ``reproduce_<dataset>_<method>_<split>_<settings hash>``."""
    return f"reproduce_{config.dataset}_{config.method}_{config.split}_{settings_hash(config)}"
