"""CLIP encoders: loading (bundled, local folder or file, open_clip hub), weight formats, image preprocessing."""

from cirlib.encoders.loading import Encoder, describe, load_encoder
from cirlib.encoders.transforms import PREPROCESS_KINDS, PadToRatio, PreprocessConfig, build_preprocess

__all__ = ["Encoder", "PREPROCESS_KINDS", "PadToRatio", "PreprocessConfig", "build_preprocess", "describe",
           "load_encoder"]
