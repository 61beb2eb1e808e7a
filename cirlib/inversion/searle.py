"""SEARLE (Baldrati et al., ICCV 2023): optimisation-based textual inversion (OTI) and SEARLE-XL.

**OTI** inverts each image on its own: a pseudo-word (initialised N(0, 0.02²)) is optimised with
AdamW so that a prompt holding it ("a photo of a $", a template drawn at random each step from
PALAVRA's list) encodes close to the image feature (cosine loss), while a regulariser keeps it
word-like: in a phrase about one of the image's nearest concept words, the pseudo-word must give
the same text feature as the concept word itself. Loss = (cos + lambda_reg * reg) / (1 + lambda_reg);
an exponential moving average (decay 0.99) of the pseudo-word is the result. SEARLE's settings:
350 steps, lr 2e-2, weight decay 0.01, lambda_reg 0.5, 15 concepts per image.

**SEARLE-XL** distils OTI into phi: OTI inverts a set of unlabeled images, then phi (GELU MLP,
hidden 4x, dropout 0.5) learns to predict those pseudo-words from the image features with a
contrastive loss (temperature 0.25) plus the same regulariser on its own outputs (weight 0.25).

Simplified here: concept words are the synthetic vocabulary's garment and shape nouns (17; top-3
per image rather than top-15 of a large dictionary); the phrases come from templates filled with
attribute words, not from GPT (``cirlib.inversion.concepts``); the distillation loss is the
symmetric InfoNCE between phi's outputs and the OTI pseudo-words (SEARLE's NT-Xent also
contrasts within each set); unlabeled stream images replace ImageNet's test set.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cirlib.inversion.concepts import CONCEPTS, concept_phrases
from cirlib.inversion.inject import PromptEncoder
from cirlib.inversion.loop import InversionConfig, contrastive_loss, fit, inversion_job, make_phi, prepare, step_seed
from cirlib.util.config import setting
from cirlib.util.device import compute_precision
from cirlib.util.tensor_io import read_cache, save_tensors

METHOD = "searle"
OTI_TOKENS = "oti_tokens.safetensors"
# PALAVRA's templates, as SEARLE uses them (a subset; "{}" is where the placeholder goes).
OTI_TEMPLATES = ("this is a photo of a {}", "this photo contains a {}", "a photo of a {}", "an image of a {}",
                 "a picture of a {}", "a {}", "{}", "we see a {} in this photo", "we see a {} in this image",
                 "{} photo", "{} image")


@dataclass
class SearleConfig(InversionConfig):
    kind: str = "searle"  # the job kind in `cirlib train`
    out: str = "runs/searle"
    # OTI (used for SEARLE-XL's training targets and for the "SEARLE (OTI)" method at evaluation)
    oti_steps: int = setting(350, minimum=0)
    oti_lr: float = setting(2e-2, above=0)
    oti_weight_decay: float = setting(0.01, minimum=0)
    oti_batch_size: int = setting(512, minimum=1)
    oti_init_std: float = setting(0.02, minimum=0)
    oti_lambda_reg: float = setting(0.5, minimum=0)
    oti_ema_decay: float = setting(0.99, minimum=0, maximum=1)
    top_k_concepts: int = setting(3, minimum=1)
    phrases_per_concept: int = setting(12, minimum=1)
    # SEARLE-XL
    oti_pairs: int = setting(4096, minimum=1)   # stream images inverted by OTI as phi's targets
    distil_temperature: float = setting(0.25, above=0)
    lambda_distil: float = setting(1.0, minimum=0)
    lambda_reg: float = setting(0.25, minimum=0)


class ConceptBank:
    """Concept words with their regularisation phrases, tokenised and encoded once.

    Phrase row ``c * per_concept + p`` is phrase ``p`` of concept ``c``: ``tokens`` hold it with the
    placeholder in the concept's place, ``targets`` are the text features with the concept word.
    """

    def __init__(self, prompts: PromptEncoder, per_concept: int, seed: int = 0) -> None:
        self.prompts, self.per_concept = prompts, per_concept
        self.concept_features = F.normalize(prompts.encode_texts([f"a photo of a {c}" for c in CONCEPTS]), dim=-1)
        phrases = [(concept, p) for concept in CONCEPTS for p in concept_phrases(concept, per_concept, seed)]
        self.tokens = prompts.tokenize([p.format(prompts.placeholder) for _, p in phrases])
        self.targets = prompts.encode_texts([p.format(concept) for concept, p in phrases])

    def associate(self, image_features: torch.Tensor, k: int) -> torch.Tensor:
        """(N, k) indices of each image's ``k`` most similar concepts (zero-shot, "a photo of a <c>")."""
        similarity = F.normalize(image_features.float(), dim=-1) @ self.concept_features.T
        return similarity.topk(min(k, len(CONCEPTS)), dim=1).indices

    def draw(self, concepts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One phrase row per image: a random concept among its top-k, a random phrase of it."""
        n, k = concepts.shape
        which = torch.randint(k, (n,), generator=generator).to(concepts.device)
        phrase = torch.randint(self.per_concept, (n,), generator=generator).to(concepts.device)
        return concepts.gather(1, which[:, None]).squeeze(1) * self.per_concept + phrase

    def loss(self, pseudo_words: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Mean (1 - cos) between the phrases with the pseudo-words and with their concept words."""
        features = self.prompts(self.tokens[rows], pseudo_words)
        return 1 - F.cosine_similarity(features.float(), self.targets[rows], dim=-1).mean()


def oti(prompts: PromptEncoder, bank: ConceptBank, image_features: torch.Tensor, config: SearleConfig,
        seed: int = 0, progress: bool = True) -> torch.Tensor:
    """(N, width) pseudo-words of N images by OTI, in batches of ``config.oti_batch_size`` (each
    image's optimisation is independent: AdamW's update is per element). Returns the EMA, on the CPU."""
    templates = prompts.tokenize([t.format(prompts.placeholder) for t in OTI_TEMPLATES])
    device, results = prompts.device, []
    starts = range(0, len(image_features), config.oti_batch_size)
    for batch, start in enumerate(tqdm(starts, desc="OTI", unit="batch", disable=not progress, mininterval=2.0)):
        v = image_features[start:start + config.oti_batch_size].to(device).float()
        generator = torch.Generator().manual_seed(step_seed(seed, batch))
        words = (torch.randn(len(v), prompts.width, generator=generator) * config.oti_init_std).to(device)
        words.requires_grad_(True)
        ema = words.detach().clone()
        concepts = bank.associate(v, config.top_k_concepts)
        optimizer = torch.optim.AdamW([words], lr=config.oti_lr, weight_decay=config.oti_weight_decay)
        for _ in range(config.oti_steps):
            template_rows = torch.randint(len(templates), (len(v),), generator=generator).to(device)
            phrase_rows = bank.draw(concepts, generator)
            with compute_precision(device, config.precision):
                cosine = 1 - F.cosine_similarity(prompts(templates[template_rows], words).float(), v, dim=-1).mean()
                loss = (cosine + config.oti_lambda_reg * bank.loss(words, phrase_rows)) / (1 + config.oti_lambda_reg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema = config.oti_ema_decay * ema + (1 - config.oti_ema_decay) * words.detach()
        results.append(ema.cpu())
    return torch.cat(results) if results else torch.empty(0, prompts.width)


def _oti_targets(config: SearleConfig, prompts: PromptEncoder, bank: ConceptBank, images: torch.Tensor,
                 resume: bool) -> torch.Tensor:
    """OTI pseudo-words of the training images, saved in the run folder (reused on resume)."""
    path, settings = Path(config.out) / OTI_TOKENS, json.dumps(asdict(config), sort_keys=True)
    stored = read_cache(path, "the OTI pseudo-word cache") if resume else None
    if stored is not None and stored[1].get("config") == settings:
        return stored[0]["pseudo_words"].to(prompts.device)
    targets = oti(prompts, bank, images, config, seed=config.seed)
    save_tensors(path, {"pseudo_words": targets}, {"config": settings})
    return targets.to(prompts.device)


@inversion_job(OTI_TOKENS)
def train_searle(config: SearleConfig, resume: bool = False, verbose: bool = True) -> Path:
    """OTI on ``config.oti_pairs`` stream images, then SEARLE-XL's phi distilled from them; returns the
    run folder. The run's config also defines the OTI settings of the "SEARLE (OTI)" method. ``verbose``:
    print the config, the OTI time and the log."""
    setup = prepare(config, METHOD, verbose)
    prompts, device = setup.prompts, setup.encoder.device
    bank = ConceptBank(prompts, config.phrases_per_concept, seed=config.seed)
    images = setup.stream.image[:config.oti_pairs].to(device)
    started = time.perf_counter()
    targets = _oti_targets(config, prompts, bank, images, resume)
    oti_seconds = time.perf_counter() - started
    if verbose:
        print(f"OTI of {len(images)} images: {oti_seconds:.0f} s", flush=True)
    phi = make_phi(config, prompts, images.shape[1])
    concepts = bank.associate(images, config.top_k_concepts)

    def step_loss(rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        estimated = phi(images[rows])
        distil = contrastive_loss(estimated, targets[rows], 1 / config.distil_temperature)
        reg = bank.loss(estimated, bank.draw(concepts[rows]))
        return config.lambda_distil * distil + config.lambda_reg * reg, {"distil": distil.item(), "reg": reg.item()}

    fit(config, phi, step_loss, len(images), device,
        {"method": METHOD, "encoder": setup.encoder.identity, "prepare_seconds": round(setup.seconds, 2),
         "oti_seconds": round(oti_seconds, 2), "input_normalize": False}, resume, verbose)
    if verbose:
        print(f"searle trained in {time.perf_counter() - started:.0f} s -> {config.out}", flush=True)
    return Path(config.out)
