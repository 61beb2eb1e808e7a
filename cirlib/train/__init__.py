"""Training: contrastive pretraining of the small CLIP (and, later, the fusion models)."""
