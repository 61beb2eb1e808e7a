"""What a ``cirlib reproduce`` run measures: the split's features (and WeiMoCIR's gallery captions), the method's
metrics on val, or on a test split (CIRR test1, CIRCO test: no public targets) the test-server submission files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from cirlib.data import CIRCO, CIRR, FashionIQ
from cirlib.encoders.loading import Encoder
from cirlib.evaluation.evaluate import Method, evaluate_split
from cirlib.experiments.jobs import fusion_method
from cirlib.experiments.paper_numbers import ZERO_SHOT_METHODS
from cirlib.experiments.reproduce_config import ReproduceConfig, run_name
from cirlib.features import FeatureCache, circo_features, cirr_features, fashioniq_features
from cirlib.features.captions import CaptionedSplit, captioned_split
from cirlib.features.splits import SplitFeatures
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.metrics import cirr_rankings, rank_gallery, write_circo_submission, write_cirr_submission
from cirlib.metrics.protocols import protocol
from cirlib.train.stage2 import load_trained_fusion
from cirlib.util.errors import FileError
from cirlib.weimocir.select import held_out_choice
from cirlib.weimocir.sweeps import ScoreGrid, sweep

ZERO_SHOT = dict(zip(ZERO_SHOT_METHODS, ("image only", "text only", "sum")))  # -> cirlib.fusion names
QUERY_FILES = {"cirr": "cirr/captions/cap.rc2.{split}.json", "circo": "annotations/{split}.json"}
"""Where a test split's queries are listed (as ``SplitFeatures.missing`` names it)."""
TOP_K = 50
SUBSET_TOP_K = 3
CHUNK = 1024  # queries scored at once for a submission

Features = SplitFeatures | dict[str, SplitFeatures]
"""One split's features, or FashionIQ's {category: features}."""
ImagePath = Callable[[object], Path]


def _fashioniq(encoder: Encoder, cache: FeatureCache, root: Path, split: str,
               on_missing: str) -> tuple[Features, ImagePath]:
    return ({c: fashioniq_features(encoder, cache, root, c, split, on_missing=on_missing)
             for c in FashionIQ.CATEGORIES}, FashionIQ(root, on_missing).image_path)


def _cirr(encoder: Encoder, cache: FeatureCache, root: Path, split: str,
          on_missing: str) -> tuple[Features, ImagePath]:
    reader = CIRR(root, on_missing)
    return cirr_features(encoder, cache, root, split, on_missing=on_missing), lambda n: reader.image_path(n, split)


def _circo(encoder: Encoder, cache: FeatureCache, root: Path, split: str,
           on_missing: str) -> tuple[Features, ImagePath]:
    return circo_features(encoder, cache, root, split, on_missing=on_missing), CIRCO(root, on_missing).image_path


_LOADERS = {"fashioniq": _fashioniq, "cirr": _cirr, "circo": _circo}


def split_features(encoder: Encoder, cache: FeatureCache, config: ReproduceConfig) -> tuple[Features, ImagePath]:
    """(features, image_path) of the split: FashionIQ per category, CIRR and CIRCO whole."""
    return _LOADERS[config.dataset](encoder, cache, Path(config.data_root), config.split, config.on_missing)


def captioned(encoder: Encoder, cache: FeatureCache, config: ReproduceConfig, features: Features,
               image_path: ImagePath) -> CaptionedSplit | dict[str, CaptionedSplit]:
    """The split with the gallery captions' features, WeiMoCIR's database side."""
    captions, split = Path(config.captions), config.split
    if isinstance(features, Mapping):
        return {c: captioned_split(encoder, cache, config.dataset, f,
                                   captions / f"{c}.{split}.json" if captions.is_dir() else captions,
                                   f"{config.dataset}-{c}-{split}", image_path) for c, f in features.items()}
    return captioned_split(encoder, cache, config.dataset, features, captions, f"{config.dataset}-{split}", image_path)


def _method(config: ReproduceConfig) -> Method:
    """The fusion of a zero-shot or trained method, as an evaluation ``Method``."""
    if config.method in ZERO_SHOT:
        return ZERO_SHOT_BASELINES[ZERO_SHOT[config.method]]
    model, _ = load_trained_fusion(config.checkpoint)
    return fusion_method(model)


def weimocir_val(split: CaptionedSplit | dict[str, CaptionedSplit],
                 config: ReproduceConfig) -> tuple[dict[str, float], dict]:
    """WeiMoCIR on val: the metrics at ``config``'s (α, β) as a one-cell sweep, which scores exactly as the grid does,
    and the held-out choice with the upper bound beside it (``HeldOutChoice.summary``)."""
    measured = sweep(split, [config.alpha], [config.beta], progress=False).at(config.alpha, config.beta)
    return measured, held_out_choice(split, device=config.device).summary()


def evaluate_val(config: ReproduceConfig, features: Features) -> dict[str, float]:
    """The dataset's metrics on the val split for a zero-shot or trained method."""
    return evaluate_split(config.dataset, features, _method(config))


def scorer(encoder: Encoder, cache: FeatureCache, config: ReproduceConfig, features: SplitFeatures,
           image_path: ImagePath) -> Callable[[slice], torch.Tensor]:
    """rows -> (rows, gallery) scores of those queries: WeiMoCIR's, or the fused queries against the normalised
    gallery."""
    if config.method == "weimocir":
        split = captioned(encoder, cache, config, features, image_path)
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


def submit(config: ReproduceConfig, features: SplitFeatures, scores: Callable[[slice], torch.Tensor]) -> list[str]:
    """Write the split's test-server files into ``config.results``; return their paths."""
    _require_every_query(config, features)
    prefix, names = Path(config.results) / run_name(config), features.gallery_names
    chunks = [slice(start, start + CHUNK) for start in range(0, len(features.reference_names), CHUNK)]
    if protocol(config.dataset).has_subset:  # CIRR: a recall file and a recall_subset file
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
