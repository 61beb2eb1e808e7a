"""CLIP features of dataset splits: batched extraction, the safetensors feature cache, gallery caption features."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.features.cache": ["FeatureCache"],
    "cirlib.features.captions": ["SYNTH_CAPTION_FILES", "synth_captioned_splits"],
    "cirlib.features.extract": ["encode_images", "encode_texts"],
    "cirlib.features.splits": ["SplitFeatures", "circo_features", "cirr_features", "fashioniq_features"],
})
