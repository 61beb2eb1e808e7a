"""Fusion of a reference image feature and a modification text feature into one query feature.

Zero-shot functions (``image_only``, ``text_only``, ``sum_fusion``) and trainable modules with one
interface, ``module(image_features, text_features) -> L2-normalised queries``: ``SumFusion``,
``Combiner`` (CLIP4Cir), ``BilinearCombiner`` (CLIP-CD), ``MoECombiner``; ``build_fusion`` builds
any of them by name.
"""

from cirlib.fusion.baselines import ZERO_SHOT_BASELINES, image_only, sum_fusion, text_only
from cirlib.fusion.bilinear import BilinearCombiner, BilinearPooling
from cirlib.fusion.combiner import Combiner
from cirlib.fusion.moe import MoECombiner, Routing, load_balancing_loss, route, switch_loss
from cirlib.fusion.registry import FUSIONS, build_fusion, fuse, option_types, parameter_count
from cirlib.fusion.sum import SumFusion

__all__ = ["FUSIONS", "ZERO_SHOT_BASELINES", "BilinearCombiner", "BilinearPooling", "Combiner", "MoECombiner",
           "Routing", "SumFusion", "build_fusion", "fuse", "image_only", "load_balancing_loss", "option_types",
           "parameter_count", "route", "sum_fusion", "switch_loss", "text_only"]
