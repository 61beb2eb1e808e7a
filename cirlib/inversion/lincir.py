"""LinCIR (Gu et al., CVPR 2024): language-only training by self-masking projection (SMP).

No image is used. For a caption c with text feature t = psi_T(c): phi maps t (plus noise) to a
pseudo-word; the caption with each run of keywords replaced by the placeholder ("$ of $ in $ on $")
is encoded with that pseudo-word, and must reproduce t (mean squared error on the raw features).
At test time phi gets an *image* feature instead; the noise added to t during training,
``noise_scale * U(0, 1) * N(0, I)`` per caption (LinCIR's choice: a Gaussian with a random scale),
is what lets phi accept features from the other side of the modality gap.
LinCIR's phi is SEARLE's (GELU MLP, hidden 4x, dropout 0.5); AdamW lr 1e-4, weight decay 0.01.

Simplified here: keywords are found with the synthetic vocabulary instead of spaCy
(``cirlib.inversion.concepts.mask_keywords``); captions are the synthetic pretraining stream's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cirlib.inversion.concepts import mask_keywords
from cirlib.inversion.loop import InversionConfig, fit, inversion_job, make_phi, prepare
from cirlib.util.config import setting

METHOD = "lincir"


@dataclass
class LinCIRConfig(InversionConfig):
    kind: str = "lincir"  # the job kind in `cirlib train`
    out: str = "runs/lincir"
    noise_scale: float = setting(1.0, minimum=0)
    normalize_input: bool = False  # LinCIR's --l2_normalize (off by default there too)


def modality_noise(features: torch.Tensor, scale: float) -> torch.Tensor:
    """``features`` plus LinCIR's noise: per row, a N(0, I) vector times U(0, 1) times ``scale``."""
    return features + scale * torch.rand(len(features), 1, device=features.device) * torch.randn_like(features)


@inversion_job()
def train_lincir(config: LinCIRConfig, resume: bool = False, verbose: bool = True) -> Path:
    """Train LinCIR's phi on captions alone; returns the run folder (``config.out``). ``verbose``: print the
    config and the log."""
    setup = prepare(config, METHOD, verbose)
    prompts, device = setup.prompts, setup.encoder.device
    text = setup.stream.text.to(device)
    tokens = prompts.tokenize([mask_keywords(c, config.placeholder) for c in setup.stream.captions])
    phi = make_phi(config, prompts, text.shape[1])

    def step_loss(rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        target = text[rows]
        inputs = modality_noise(target, config.noise_scale)
        if config.normalize_input:
            inputs = F.normalize(inputs, dim=-1)
        return F.mse_loss(prompts(tokens[rows], phi(inputs)).float(), target), {}

    started = time.perf_counter()
    fit(config, phi, step_loss, len(text), device,
        {"method": METHOD, "encoder": setup.encoder.identity, "prepare_seconds": round(setup.seconds, 2),
         "input_normalize": config.normalize_input}, resume, verbose)
    if verbose:
        print(f"lincir trained in {time.perf_counter() - started:.0f} s -> {config.out}", flush=True)
    return Path(config.out)
