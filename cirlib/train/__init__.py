"""Training: contrastive pretraining of the small CLIP (``pretrain``), CLIP4Cir's stage-1 fine-tuning of both
encoders with the sum fusion (``stage1``), and stage-2 training of fusion modules on cached features of a frozen
encoder (``stage2``, with ``triplets``, ``loss``, ``schedule`` and CLIP-CD's ``pseudo_triplets``; the DDP plumbing
is ``cirlib.util.distributed``). Validation metrics come in as callables: this layer imports no metrics,
indexes or evaluation code."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.train.loss": ["batch_classification_loss"],
    "cirlib.train.stage2": ["load_trained_fusion"],
})
