"""Fusion of a reference image feature and a modification text feature into one query feature.

Zero-shot functions (``image_only``, ``text_only``, ``sum_fusion``) and trainable modules with one
interface, ``module(image_features, text_features) -> L2-normalised queries``: ``SumFusion``,
``Combiner`` (CLIP4Cir), ``BilinearCombiner`` (CLIP-CD), ``MoECombiner``; ``build_fusion`` builds
any of them by name.
"""

from .baselines import ZERO_SHOT_BASELINES, image_only, sum_fusion, text_only
from .bilinear import BilinearCombiner, BilinearPooling
from .combiner import Combiner
from .moe import MoECombiner, Routing, load_balancing_loss
from .registry import FUSIONS, build_fusion, fuse, option_types, parameter_count
from .sum import SumFusion
from .weighted import PAPER_ALPHA, PAPER_BETA, VARIANTS, weighted_fusion, weighted_similarity

__all__ = ["FUSIONS", "PAPER_ALPHA", "PAPER_BETA", "VARIANTS", "ZERO_SHOT_BASELINES", "BilinearCombiner",
           "BilinearPooling", "Combiner", "MoECombiner", "Routing", "SumFusion", "build_fusion", "option_types",
           "fuse", "image_only",
           "load_balancing_loss", "parameter_count", "sum_fusion", "text_only", "weighted_fusion",
           "weighted_similarity"]
