"""Zero-shot CIR by textual inversion, trained without triplets: Pic2Word, SEARLE (OTI, SEARLE-XL), LinCIR.

* ``inject``: encode "a photo of $ that ..." with a pseudo-word in the placeholder (the shared mechanism);
* ``mapping``: phi, the MLP from a CLIP feature to a pseudo-word;
* ``pic2word``, ``searle``, ``lincir``: one config dataclass and one ``train_<method>(config) -> run folder`` each;
* ``evaluate`` (imported on its own: it sits above ``cirlib.evaluation.evaluate``): inverters from run folders,
  query building as a ``cirlib.evaluation.evaluate.Method``, and scores on the benchmark's val splits.
"""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.inversion.concepts": ["ATTRIBUTE_WORDS", "KEYWORDS", "WORD_KINDS", "attribute_words", "keyword_runs",
                                 "mask_keywords"],
    "cirlib.inversion.evaluate": ["evaluate_inversion", "inversion_method", "load_inverter"],
    "cirlib.inversion.inject": ["PLACEHOLDER", "PromptEncoder", "encode_with_pseudo_words", "freeze",
                               "placeholder_token_id", "token_embeddings"],
    "cirlib.inversion.lincir": ["LinCIRConfig", "modality_noise", "train_lincir"],
    "cirlib.inversion.loop": ["contrastive_loss", "finished_run", "load_phi", "loss_summary", "run_seconds"],
    "cirlib.inversion.mapping": ["Phi", "PhiConfig", "build_phi"],
    "cirlib.inversion.pic2word": ["Pic2WordConfig", "train_pic2word"],
    "cirlib.inversion.searle": ["SearleConfig", "oti", "train_searle"],
})
