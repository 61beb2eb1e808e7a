"""Training: contrastive pretraining of the small CLIP (``pretrain``) and stage-2 training of fusion
modules on cached features of a frozen encoder (``stage2``, with ``triplets``, ``loss``, ``schedule``,
``distributed`` and CLIP-CD's ``pseudo_triplets``). Validation metrics come in as callables: this
layer imports no metrics, indexes or evaluation code."""
