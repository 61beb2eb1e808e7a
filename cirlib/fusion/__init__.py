"""Fusion of a reference image feature and a modification text feature into one query feature."""

from .baselines import ZERO_SHOT_BASELINES, image_only, sum_fusion, text_only

__all__ = ["ZERO_SHOT_BASELINES", "image_only", "sum_fusion", "text_only"]
