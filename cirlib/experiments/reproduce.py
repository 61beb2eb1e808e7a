"""Run a paper's setting on the real dataset a user has downloaded, beside the paper's numbers.

    cirlib reproduce --dataset fashioniq --method weimocir --data-root data/fashionIQ \\
        --captions data/fashionIQ/captions_blip2
    cirlib reproduce --dataset cirr --method combiner --data-root data/cirr_dataset \\
        --checkpoint runs/clip4cir_rn50x4_cirr/best.safetensors --split test1

Zero-shot methods (image-only, text-only, sum) need only the dataset and a CLIP; WeiMoCIR also
needs the gallery captions a captioning model wrote (``--captions``: one file, or for FashionIQ a
folder of ``<category>.<split>.json``); trained fusion methods (combiner, clip-cd, moe) take the
``best.safetensors`` of a ``cirlib train`` run on that dataset (``--checkpoint``).

Settings not given are the checkpoint's (a trained fusion only fits the features it was trained on:
its model, pretrained, preprocess and quick_gelu; a mismatch, another fusion than ``--method``, another
dataset or another feature width is refused in one line), else the paper's
(:data:`cirlib.experiments.paper_numbers.PAPER_SETTINGS`: WeiMoCIR's OpenCLIP LAION-2B weights and CLIP
preprocessing, CLIP4Cir's OpenAI RN50x4 and targetpad). An open_clip architecture is never run with
random weights. The paper's row is printed only when the model and pretrained strings match the
paper's exactly; otherwise the note says which weights the paper used.

The val split is evaluated; on CIRR test1 and CIRCO test (no public targets) the test-server
submission files are written instead, into ``results``. WeiMoCIR on val is also scored with (α, β) chosen on
held-out halves of val (``cirlib.weimocir.select``: each half of the queries at the best cell of the other half),
beside the best cell of the whole split (an upper bound), in the result's "held-out choice". Every result is named
by the dataset, method, split and a hash of the settings (:func:`run_name`), so runs with other settings never
overwrite each other, and holds the settings and the count of images skipped (``--on-missing skip``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from cirlib.data import CIRCO, CIRR, DatasetError, FashionIQ
from cirlib.encoders import describe
from cirlib.encoders.loading import BUNDLED, Encoder, config_encoder
from cirlib.encoders.transforms import PREPROCESS_KINDS
from cirlib.evaluation.evaluate import Method, evaluate_circo, evaluate_cirr, evaluate_fashioniq
from cirlib.experiments.jobs import fusion_method
from cirlib.experiments.paper_numbers import (
    DATASETS,
    METHODS,
    PAPER_SETTINGS,
    TRAINED_METHODS,
    ZERO_SHOT_METHODS,
    default_weights,
    paper_result,
    paper_weights,
)
from cirlib.features import FeatureCache, circo_features, cirr_features, fashioniq_features
from cirlib.features.captions import CaptionedSplit, captioned_split
from cirlib.features.splits import SplitFeatures, merged_missing, missing_summary
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.metrics import cirr_rankings, rank_gallery, write_circo_submission, write_cirr_submission
from cirlib.train.checkpoint import read_record
from cirlib.train.stage2 import load_trained_fusion
from cirlib.util.atomic import write_json
from cirlib.util.config import DEVICE, json_sha256, setting, validate
from cirlib.util.errors import CirlibError, FileError
from cirlib.weimocir.select import held_out_choice
from cirlib.weimocir.sweeps import ScoreGrid, sweep

DOWNLOADS = {
    "fashioniq": ("https://github.com/XiaoxiaoGuo/fashion-iq", "captions/, image_splits/, images/"),
    "cirr": ("https://github.com/Cuberick-Orz/CIRR", "cirr/captions/, cirr/image_splits/, train/, dev/, test1/"),
    "circo": ("https://github.com/miccunifi/CIRCO", "annotations/, COCO2017_unlabeled/"),
}
FIRST_FOLDER = {"fashioniq": "captions", "cirr": "cirr", "circo": "annotations"}
ZERO_SHOT = dict(zip(ZERO_SHOT_METHODS, ("image only", "text only", "sum")))  # -> cirlib.fusion names
SPLITS = {"fashioniq": ("val",), "cirr": ("val", "test1"), "circo": ("val", "test")}
"""The splits reproduce runs: val is evaluated; CIRR test1 and CIRCO test (no public targets) are submitted."""
QUERY_FILES = {"cirr": "cirr/captions/cap.rc2.{split}.json", "circo": "annotations/{split}.json"}
"""Where a test split's queries are listed (as ``SplitFeatures.missing`` names it)."""
SERVERS = {"cirr": "https://cirr.cecs.anu.edu.au/", "circo": "https://circo.micc.unifi.it/"}
METHOD_FUSION = {"combiner": "combiner", "clip-cd": "bilinear", "moe": "moe"}
"""The ``fusion`` a checkpoint of each trained method records (CLIP-CD's is the bilinear Combiner)."""
ENCODER_FIELDS = ("model", "pretrained", "preprocess", "quick_gelu")
"""The settings that make the features: a trained fusion's checkpoint fixes them."""
UNHASHED = ("cache", "device", "results")
"""Settings that do not change the numbers (where it runs, where files go): not in the result's name."""
TOP_K = 50
SUBSET_TOP_K = 3
CHUNK = 1024  # queries scored at once for a submission

Features = SplitFeatures | dict[str, SplitFeatures]
"""One split's features, or FashionIQ's {category: features}."""


@dataclass
class ReproduceConfig:
    """One reproduction run; printed first and saved with the results. None: the checkpoint's, else the paper's."""

    dataset: str = setting(choices=DATASETS)
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
    if config.method in TRAINED_METHODS and config.dataset == "circo":
        raise CirlibError("CIRCO has no training split: trained methods are evaluated on FashionIQ and CIRR")
    if config.split not in SPLITS[config.dataset]:
        raise CirlibError(f"--split {config.split} is not a {config.dataset} split reproduce runs: choose "
                          f"{' or '.join(SPLITS[config.dataset])}")


def _carries_weights(model: str) -> bool:
    """Whether ``model`` holds its weights (bundled, a model folder, hf-hub:/local-dir:) and needs no pretrained."""
    return model in BUNDLED or (Path(model) / "open_clip_config.json").is_file() or \
        model.startswith(("hf-hub:", "local-dir:"))


def _checkpoint_record(config: ReproduceConfig) -> dict | None:
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
    record = _checkpoint_record(config)
    settings = _paper_settings(config) if record is None else _checkpoint_settings(config, record)
    return replace(config, **settings)


def settings_hash(config: ReproduceConfig) -> str:
    """A short hash of the settings that change the numbers (all but :data:`UNHASHED`)."""
    settings = {name: value for name, value in asdict(config).items() if name not in UNHASHED}
    return json_sha256(settings)[:8]


def run_name(config: ReproduceConfig) -> str:
    """The name of a run's files: ``reproduce_<dataset>_<method>_<split>_<settings hash>``."""
    return f"reproduce_{config.dataset}_{config.method}_{config.split}_{settings_hash(config)}"


def _split_features(encoder: Encoder, cache: FeatureCache,
                    config: ReproduceConfig) -> tuple[Features, Callable[[object], Path]]:
    """(features, image_path) of the split: FashionIQ per category, CIRR and CIRCO whole."""
    root, split, on_missing = Path(config.data_root), config.split, config.on_missing
    if config.dataset == "fashioniq":
        return ({c: fashioniq_features(encoder, cache, root, c, split, on_missing=on_missing)
                 for c in FashionIQ.CATEGORIES}, FashionIQ(root, on_missing).image_path)
    if config.dataset == "cirr":
        reader = CIRR(root, on_missing)
        return cirr_features(encoder, cache, root, split, on_missing=on_missing), lambda n: reader.image_path(n, split)
    return circo_features(encoder, cache, root, split, on_missing=on_missing), CIRCO(root, on_missing).image_path


def _captioned(encoder: Encoder, cache: FeatureCache, config: ReproduceConfig, features: Features,
               image_path: Callable[[object], Path]) -> CaptionedSplit | dict[str, CaptionedSplit]:
    """The split with the gallery captions' features, WeiMoCIR's database side."""
    captions, split = Path(config.captions), config.split
    if isinstance(features, Mapping):
        return {c: captioned_split(encoder, cache, "fashioniq", f,
                                   captions / f"{c}.{split}.json" if captions.is_dir() else captions,
                                   f"fashioniq-{c}-{split}", image_path) for c, f in features.items()}
    return captioned_split(encoder, cache, config.dataset, features, captions, f"{config.dataset}-{split}", image_path)


def _method(config: ReproduceConfig) -> Method:
    """The fusion of a zero-shot or trained method, as an evaluation ``Method``."""
    if config.method in ZERO_SHOT:
        return ZERO_SHOT_BASELINES[ZERO_SHOT[config.method]]
    model, _ = load_trained_fusion(config.checkpoint)
    return fusion_method(model)


def _weimocir_val(split: CaptionedSplit | dict[str, CaptionedSplit],
                  config: ReproduceConfig) -> tuple[dict[str, float], dict]:
    """WeiMoCIR on val: the metrics at ``config``'s (α, β) as a one-cell sweep, which scores exactly as the grid does,
    and the held-out choice with the upper bound beside it (``HeldOutChoice.summary``)."""
    measured = sweep(split, [config.alpha], [config.beta], progress=False).at(config.alpha, config.beta)
    return measured, held_out_choice(split, device=config.device).summary()


def _evaluate(config: ReproduceConfig, features: Features) -> dict[str, float]:
    """The dataset's metrics on the val split for a zero-shot or trained method."""
    if config.dataset == "fashioniq":
        return evaluate_fashioniq(features, _method(config))
    if config.dataset == "cirr":
        return evaluate_cirr(features, _method(config))
    return {f"mAP@{k}": v for k, v in evaluate_circo(features, _method(config)).items()}


def _scorer(encoder: Encoder, cache: FeatureCache, config: ReproduceConfig, features: SplitFeatures,
            image_path: Callable[[object], Path]) -> Callable[[slice], torch.Tensor]:
    """rows -> (rows, gallery) scores of those queries: WeiMoCIR's, or the fused queries against the normalised
    gallery."""
    if config.method == "weimocir":
        split = _captioned(encoder, cache, config, features, image_path)
        return lambda rows: ScoreGrid(split, queries=rows).scores(config.alpha, config.beta)
    method, gallery = _method(config), F.normalize(features.gallery.float(), dim=-1)
    return lambda rows: method(features.reference[rows], features.text[rows]) @ gallery.T


def _require_every_query(config: ReproduceConfig, features: SplitFeatures) -> None:
    """A test server needs every query: one skipped for a missing image would get the submission rejected."""
    listing = QUERY_FILES[config.dataset].format(split=config.split)
    if features.missing.get(listing):
        names = features.missing[listing]
        raise FileError(Path(config.data_root) / listing, f"queries need {len(names)} missing image(s) (e.g. "
                        f"{names[0]}), and the server rejects a submission without them",
                        "restore the missing images; --on-missing skip can only skip gallery images here")


def _submit(config: ReproduceConfig, features: SplitFeatures, scores: Callable[[slice], torch.Tensor]) -> list[str]:
    """Write the split's test-server files into ``config.results``; return their paths."""
    _require_every_query(config, features)
    prefix, names = Path(config.results) / run_name(config), features.gallery_names
    chunks = [slice(start, start + CHUNK) for start in range(0, len(features.reference_names), CHUNK)]
    if config.dataset == "cirr":
        ranked, subset = [], []
        for rows in chunks:
            top, within = cirr_rankings(scores(rows), names, features.reference_names[rows],
                                        features.extra["img_set_members"][rows], TOP_K, SUBSET_TOP_K)
            ranked, subset = ranked + top, subset + within
        paths = write_cirr_submission(prefix, features.extra["pair_ids"], ranked, subset)
    else:  # CIRCO: the reference stays in the ranking (SEARLE's protocol)
        ranked = [row for rows in chunks for row in rank_gallery(scores(rows), names, TOP_K)]
        paths = (write_circo_submission(prefix.with_name(f"{prefix.name}_submission.json"),
                                        features.extra["query_ids"], ranked),)
    return [str(path) for path in paths]


def _paper(config: ReproduceConfig) -> tuple[dict | None, str]:
    """(the paper's row for exactly these weights or None, a note saying whose numbers they are or why none)."""
    quoted = paper_result(config.dataset, config.method, config.model, config.pretrained)
    if quoted is not None:
        note = f"paper: {quoted.source} ({quoted.split} split, weights {quoted.weights})"
        row = {"metrics": quoted.metrics, "source": quoted.source, "split": quoted.split,
               "weights": str(quoted.weights), "note": quoted.note}
        return row, note + (f", {quoted.note}" if quoted.note else "")
    used = paper_weights(config.dataset, config.method)
    if not used:
        return None, f"the seeds quote no number for {config.method} on {config.dataset}"
    source = paper_result(config.dataset, config.method, used[0].model, used[0].pretrained).source
    return None, (f"no paper row: {source} quote {config.method} on {config.dataset} with "
                  f"{', '.join(map(str, used))} (--model, --pretrained), not with {config.model} {config.pretrained}")


def reproduce(config: ReproduceConfig) -> dict:
    """Measured metrics on the val split (or the submission files of a test split) and the paper's row.

    The settings are resolved first (:func:`resolve_settings`); the result holds them, its ``name``
    (:func:`run_name`), the encoder, the images skipped, and the paper's row or why there is none.
    """
    config = resolve_settings(config)
    record = _checkpoint_record(config)
    encoder = config_encoder(config)
    if record is not None and record["embed_dim"] != encoder.embed_dim:
        raise FileError(config.checkpoint, f"was trained on {record['embed_dim']}-d features, but {encoder.name} "
                        f"gives {encoder.embed_dim}-d", "pass the encoder it was trained with, or a checkpoint trained "
                        "on this encoder's features")
    cache = FeatureCache(config.cache)
    features, image_path = _split_features(encoder, cache, config)
    result = {"name": run_name(config), "config": asdict(config), "encoder": describe(encoder), "split": config.split,
              "missing": missing_summary(merged_missing(features)), "measured": {}, "submission": []}
    if config.split == "val" and config.method == "weimocir":
        split = _captioned(encoder, cache, config, features, image_path)
        result["measured"], result["held-out choice"] = _weimocir_val(split, config)
    elif config.split == "val":
        result["measured"] = _evaluate(config, features)
    else:
        result["submission"] = _submit(config, features, _scorer(encoder, cache, config, features, image_path))
    result["paper"], result["paper note"] = _paper(config)
    return result


def save_result(result: dict, folder: Path | str) -> Path:
    """Write ``result`` as ``<folder>/<its name>.json``; return the path."""
    return write_json(Path(folder) / f"{result['name']}.json", result)


def _comparison_columns(result: dict) -> dict[str, dict]:
    """{column: metrics}: the paper's, the measured ones, and (WeiMoCIR on val) the held-out choice's and the upper
    bound's."""
    columns = {"paper": result["paper"]["metrics"] if result["paper"] else {}, "measured": result["measured"]}
    held = result.get("held-out choice")
    if held:
        columns |= {"held-out": held["metrics"], "upper bound": held["upper bound"]["metrics"]}
    return columns


def _val_lines(result: dict) -> list[str]:
    """Notes under a val result: where "measured" was taken, and (WeiMoCIR) what the held-out and upper-bound
    columns are."""
    split, held = result.get("split", "val"), result.get("held-out choice")
    if not held:
        return [f"measured: {split} split"]
    config, (alpha, beta) = result["config"], held["upper bound"]["cell"]
    return [f"measured: {split} split at α={config['alpha']:g}, β={config['beta']:g} (--alpha, --beta)",
            f"held-out: {held['chosen']} ({held['protocol']})",
            f"upper bound: α={alpha:g}, β={beta:g}, {held['upper bound']['note']}: a ceiling, not a result"]


def format_comparison(result: dict) -> str:
    """Paper and measured numbers side by side: the paper's metrics first, then every other measured one; for
    WeiMoCIR on val also the held-out choice and the upper bound."""
    columns = _comparison_columns(result)
    names = list(dict.fromkeys(name for metrics in columns.values() for name in metrics))
    widths = [max(10, len(column) + 2) for column in columns]
    lines = [f"{'metric':<22}" + "".join(f"{column:>{width}}" for column, width in zip(columns, widths))]
    for name in names:
        values = (metrics.get(name) for metrics in columns.values())
        lines.append(f"{name:<22}" + "".join(f"{'-' if value is None else f'{value:.2f}':>{width}}"
                                             for value, width in zip(values, widths)))
    lines.append(result["paper note"])
    if result.get("submission"):
        server = SERVERS[result["config"]["dataset"]]
        lines.append(f"measured: none ({result.get('split', 'val')} has no public targets); submission files for "
                     f"{server}: " + ", ".join(result["submission"]))
    else:
        lines += _val_lines(result)
    skipped = result.get("missing", {}).get("skipped images", 0)
    if skipped:
        lines.append(f"skipped {skipped} missing images and the queries that need them (--on-missing skip): "
                     "fewer queries than the paper's, so not comparable as is")
    return "\n".join(lines)
