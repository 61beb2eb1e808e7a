"""Run a paper's setting on the real dataset a user has downloaded, beside the paper's numbers.

    cirlib reproduce --dataset fashioniq --method weimocir --data-root data/fashionIQ \\
        --model ViT-L-14 --pretrained openai --captions data/fashionIQ/captions_blip2

Zero-shot methods (image-only, text-only, sum) need only the dataset and a CLIP; WeiMoCIR also
needs the gallery captions a captioning model wrote (``--captions``: one file, or for FashionIQ a
folder of ``<category>.val.json``); trained fusion methods (combiner, clip-cd, moe) take the
``best.safetensors`` of a ``cirlib train`` run on that dataset (``--checkpoint``). Evaluation is on
the val split (CIRR papers report test1, which has no public targets: submit with
``cirlib.metrics.write_cirr_submission``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .config import DEVICE, setting, validate
from .data import CIRCO, CIRR, FashionIQ
from .encoders import FeatureCache, circo_features, cirr_features, describe, fashioniq_features, load_encoder
from .encoders.captions import captioned_split
from .encoders.transforms import PREPROCESS_KINDS
from .evaluation import Method, evaluate_circo, evaluate_cirr, evaluate_fashioniq
from .experiments import fusion_method
from .fusion import ZERO_SHOT_BASELINES
from .paper_numbers import DATASETS, METHODS, TRAINED_METHODS, ZERO_SHOT_METHODS, paper_result
from .sweep import sweep
from .train.stage2 import load_trained_fusion

DOWNLOADS = {
    "fashioniq": ("https://github.com/XiaoxiaoGuo/fashion-iq", "captions/, image_splits/, images/"),
    "cirr": ("https://github.com/Cuberick-Orz/CIRR", "cirr/captions/, cirr/image_splits/, train/, dev/, test1/"),
    "circo": ("https://github.com/miccunifi/CIRCO", "annotations/, COCO2017_unlabeled/"),
}
FIRST_FOLDER = {"fashioniq": "captions", "cirr": "cirr", "circo": "annotations"}
ZERO_SHOT = dict(zip(ZERO_SHOT_METHODS, ("image only", "text only", "sum")))  # -> cirlib.fusion names


@dataclass
class ReproduceConfig:
    """One reproduction run; printed first and saved with the results."""

    dataset: str = setting(choices=DATASETS)
    method: str = setting(choices=METHODS)
    data_root: str = setting()
    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    alpha: float = setting(0.8, minimum=0, maximum=1)
    beta: float = setting(0.1, minimum=0, maximum=1)
    captions: str | None = None
    checkpoint: str | None = None
    cache: str = "data/cache"
    device: str = setting("auto", **DEVICE)

    def __post_init__(self) -> None:
        validate(self)


class MissingDatasetError(FileNotFoundError):
    """The dataset is not where the user said; the message is one line with the download page."""


def check_dataset(dataset: str, root: Path | str) -> Path:
    """``root`` if it holds the dataset's first expected folder, else a one-line MissingDatasetError."""
    root = Path(root)
    if not (root / FIRST_FOLDER[dataset]).is_dir():
        url, layout = DOWNLOADS[dataset]
        raise MissingDatasetError(f"{dataset} not found at {root} (expected {layout} there): download it from {url} "
                                  "and see data/README.md for the layout")
    return root


def _check_options(config: ReproduceConfig) -> None:
    if config.dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}")
    if config.method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}")
    if config.method == "weimocir" and not config.captions:
        raise ValueError("weimocir needs --captions: the gallery captions file (FashionIQ: a folder of "
                         "<category>.val.json), format in data/README.md")
    if config.method in TRAINED_METHODS and not config.checkpoint:
        raise ValueError(f"{config.method} needs --checkpoint: the best.safetensors of a `cirlib train` run on "
                         f"{config.dataset} (configs/clip4cir_rn50x4_*.yaml, configs/clipcd_rn50x4_fashioniq.yaml)")
    if config.method in TRAINED_METHODS and config.dataset == "circo":
        raise ValueError("CIRCO has no training split: trained methods are evaluated on FashionIQ and CIRR")


def _split_features(encoder, cache: FeatureCache, dataset: str, root: Path):
    """(features, image_path) of the val split: FashionIQ per category, CIRR and CIRCO whole."""
    if dataset == "fashioniq":
        reader = FashionIQ(root)
        return {c: fashioniq_features(encoder, cache, root, c, "val") for c in FashionIQ.CATEGORIES}, reader.image_path
    if dataset == "cirr":
        reader = CIRR(root)
        return cirr_features(encoder, cache, root, "val"), lambda name: reader.image_path(name, "val")
    return circo_features(encoder, cache, root, "val"), CIRCO(root).image_path


def _weimocir(encoder, cache: FeatureCache, config: ReproduceConfig, features, image_path) -> dict[str, float]:
    """WeiMoCIR at (α, β): a one-cell sweep, which scores exactly as the grid does."""
    captions = Path(config.captions)
    if config.dataset == "fashioniq":
        split = {c: captioned_split(encoder, cache, "fashioniq", f,
                                    captions / f"{c}.val.json" if captions.is_dir() else captions,
                                    f"fashioniq-{c}-val", image_path) for c, f in features.items()}
    else:
        split = captioned_split(encoder, cache, config.dataset, features, captions, f"{config.dataset}-val", image_path)
    return sweep(split, [config.alpha], [config.beta], progress=False).at(config.alpha, config.beta)


def _method(config: ReproduceConfig) -> Method:
    if config.method in ZERO_SHOT:
        return ZERO_SHOT_BASELINES[ZERO_SHOT[config.method]]
    model, _ = load_trained_fusion(config.checkpoint)
    return fusion_method(model)


def reproduce(config: ReproduceConfig) -> dict:
    """Measured metrics on the val split and the paper's, for the config's setting."""
    _check_options(config)
    root = check_dataset(config.dataset, config.data_root)
    encoder = load_encoder(config.model, pretrained=config.pretrained, preprocess=config.preprocess,
                           device=config.device)
    cache = FeatureCache(config.cache)
    features, image_path = _split_features(encoder, cache, config.dataset, root)
    if config.method == "weimocir":
        measured = _weimocir(encoder, cache, config, features, image_path)
    elif config.dataset == "fashioniq":
        measured = evaluate_fashioniq(features, _method(config))
    elif config.dataset == "cirr":
        measured = evaluate_cirr(features, _method(config))
    else:
        measured = {f"mAP@{k}": v for k, v in evaluate_circo(features, _method(config)).items()}
    paper = paper_result(config.dataset, config.method, config.model)
    return {"config": asdict(config), "encoder": describe(encoder), "measured": measured,
            "paper": None if paper is None else {"metrics": paper.metrics, "source": paper.source,
                                                 "split": paper.split}}


def format_comparison(result: dict) -> str:
    """Paper and measured numbers side by side, one row per metric the paper reports (all if none)."""
    paper = result["paper"]
    names = list(paper["metrics"]) if paper else list(result["measured"])
    lines = [f"{'metric':<14}{'paper':>10}{'measured':>10}"]
    for name in names:
        quoted = f"{paper['metrics'][name]:.2f}" if paper else "-"
        value = result["measured"].get(name)
        lines.append(f"{name:<14}{quoted:>10}{'-' if value is None else f'{value:.2f}':>10}")
    note = (f"paper: {paper['source']} ({paper['split']} split); measured: val split" if paper else
            "the seeds quote no number for this setting")
    return "\n".join(lines + [note])
