"""The synthetic CIR benchmark: renderers, edits, captions and writers of the official layouts.

Entry points: :func:`build.build_benchmark` (the three datasets), :func:`config.preset` (sizes),
:func:`pretrain.pretraining_pair` (the image-caption stream for training a small CLIP).
"""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.data.synth.build": ["synth_labels"],
    "cirlib.data.synth.config": ["preset"],
})
