"""Zero-shot CIR by textual inversion, trained without triplets: Pic2Word, SEARLE (OTI, SEARLE-XL), LinCIR.

* ``inject``: encode "a photo of $ that ..." with a pseudo-word in the placeholder (the shared mechanism);
* ``mapping``: phi, the MLP from a CLIP feature to a pseudo-word;
* ``pic2word``, ``searle``, ``lincir``: one config dataclass and one ``train_<method>(config) -> run folder`` each;
* ``evaluate`` (imported on its own: it sits above ``cirlib.evaluation``): inverters from run folders,
  query building as a ``cirlib.evaluation.Method``, and scores on the benchmark's val splits.
"""

from .inject import PLACEHOLDER, PromptEncoder, encode_with_pseudo_words, freeze, placeholder_token_id
from .lincir import LinCIRConfig, train_lincir
from .mapping import Phi, PhiConfig, build_phi
from .pic2word import Pic2WordConfig, train_pic2word
from .searle import SearleConfig, oti, train_searle

__all__ = ["PLACEHOLDER", "LinCIRConfig", "Phi", "PhiConfig", "Pic2WordConfig", "PromptEncoder", "SearleConfig",
           "build_phi", "encode_with_pseudo_words", "freeze", "oti", "placeholder_token_id", "train_lincir",
           "train_pic2word", "train_searle"]
