"""What a job reads and how it is scored: the training triplets and validation features of its config's dataset
(through a feature cache, or computed afresh from the current weights), and that dataset's own metrics.

The config's ``on_missing`` reaches every dataset reader; skipped queries are not counted, so recall is then over
fewer queries than the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from cirlib.encoders.loading import Encoder
from cirlib.features import FeatureCache, cirr_features, fashioniq_features
from cirlib.features.extract import encode_images, encode_texts
from cirlib.features.splits import SplitFeatures
from cirlib.metrics.protocols import protocol
from cirlib.train.stage1 import Stage1Config
from cirlib.train.stage2 import FusionTrainConfig
from cirlib.train.triplets import TripletFeatures, cirr_triplets, fashioniq_triplets

ValFeatures = Mapping[str, SplitFeatures] | SplitFeatures


def dataset_label(config: FusionTrainConfig | Stage1Config) -> str:
    """The dataset folder's name, which labels its cache files and tables (the config checked ``dataset``)."""
    return Path(config.data_root).name


def val_features(encoder: Encoder, cache: FeatureCache | MemoryFeatures,
                 config: FusionTrainConfig | Stage1Config) -> ValFeatures:
    """The validation split's cached features: per FashionIQ category, or CIRR's val split (``config.on_missing``
    applies; skipped queries are not counted, so recall is over fewer queries than the paper's)."""
    label = dataset_label(config)
    if protocol(config.dataset).has_categories:
        return {c: fashioniq_features(encoder, cache, config.data_root, c, "val", label, config.on_missing)
                for c in config.categories}
    return cirr_features(encoder, cache, config.data_root, "val", label, config.on_missing)


def train_features(encoder: Encoder, cache: FeatureCache, config: FusionTrainConfig) -> TripletFeatures:
    """The training split's triplets (FashionIQ with CLIP4Cir's four text forms; ``config.on_missing`` applies)."""
    label = dataset_label(config)
    if protocol(config.dataset).has_categories:
        return fashioniq_triplets(encoder, cache, config.data_root, "train", config.categories, dataset=label,
                                  on_missing=config.on_missing)
    return cirr_triplets(encoder, cache, config.data_root, "train", label, config.on_missing)



class MemoryFeatures:
    """:class:`FeatureCache`'s interface without files: features computed afresh from the encoder's weights as they
    are now, held in memory only (stage 1 scores every epoch's weights; those features never enter a cache)."""

    def image_features(self, encoder: Encoder, names: Sequence[str], paths: Sequence[Path | str],
                       label: str) -> torch.Tensor:
        return encode_images(encoder, paths, progress=False)

    def text_features(self, encoder: Encoder, texts: Sequence[str], label: str) -> torch.Tensor:
        return encode_texts(encoder, texts, progress=False)

