"""CLIP encoders: loading (bundled, local, hub), preprocessing, batched extraction, feature cache."""

from .cache import FeatureCache
from .device import resolve_device
from .extract import encode_images, encode_texts
from .features import SplitFeatures, circo_features, cirr_features, fashioniq_features
from .loading import Encoder, describe, load_encoder
from .transforms import PREPROCESS_KINDS, PadToRatio, PreprocessConfig, build_preprocess

__all__ = ["Encoder", "FeatureCache", "PREPROCESS_KINDS", "PadToRatio", "PreprocessConfig", "SplitFeatures",
           "build_preprocess", "circo_features", "cirr_features", "describe", "encode_images", "encode_texts",
           "fashioniq_features", "load_encoder", "resolve_device"]
