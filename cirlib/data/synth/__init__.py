"""The synthetic CIR benchmark: renderers, edits, captions and writers of the official layouts.

Entry points: :func:`build.build_benchmark` (the three datasets), :func:`config.preset` (sizes),
:func:`pretrain.pretraining_pair` (the image-caption stream for training a small CLIP).
"""
