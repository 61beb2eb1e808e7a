"""Training: pretraining the small CLIP, CLIP4Cir's stage 1 (both towers) and stage 2 (fusion on cached features).

``pretrain`` trains the small CLIP contrastively; ``stage1`` fine-tunes both encoders with the sum fusion; ``stage2``
trains fusion modules on a frozen encoder's cached features (with ``triplets``, ``loss``, ``schedule`` and CLIP-CD's
``pseudo_triplets``; the DDP plumbing is ``cirlib.util.distributed``). Validation metrics come in as callables: this
layer asks only the datasets' protocols (``cirlib.metrics.protocols``), never indexes or evaluation code."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.train.loss": ["batch_classification_loss"],
    "cirlib.train.stage2": ["load_trained_fusion"],
})
