"""Pic2Word (Saito et al., CVPR 2023): map an image feature to a pseudo-word, trained on images only.

phi turns the frozen image feature v into a token embedding s; the frozen text tower encodes
"a photo of $" with s in the placeholder, giving u. A symmetric contrastive loss (image->text and
text->image cross-entropy over the batch, logits = scale * cos) pulls u towards its own v and away
from the other images'. Pic2Word's mapping network (``IM2TEXT``) is an MLP with ReLU and dropout
0.1 whose hidden width equals the feature width; its logit scale is CLIP's own (kept frozen).

Simplifications: unlabeled images from the synthetic pretraining stream instead of CC3M; a fixed
number of steps instead of epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cirlib.inversion.loop import InversionConfig, contrastive_loss, fit, inversion_job, make_phi, prepare
from cirlib.util.config import setting

METHOD = "pic2word"


@dataclass
class Pic2WordConfig(InversionConfig):
    kind: str = "pic2word"  # the job kind in `cirlib train`
    out: str = "runs/pic2word"
    prompt: str = "a photo of $"
    logit_scale: float | None = setting(None, above=0)  # None: the CLIP model's own learned scale
    lr: float = 1e-4
    phi_hidden_mult: int = 1
    phi_dropout: float = 0.1
    phi_activation: str = "relu"
    phi_dropout_first: bool = True


@inversion_job()
def train_pic2word(config: Pic2WordConfig, resume: bool = False, verbose: bool = True) -> Path:
    """Train Pic2Word's phi; returns the run folder (``config.out``). ``verbose``: print the config and the log."""
    setup = prepare(config, METHOD, verbose)
    prompts, device = setup.prompts, setup.encoder.device
    images = setup.stream.image.to(device)
    phi = make_phi(config, prompts, images.shape[1])
    scale = config.logit_scale if config.logit_scale is not None else float(setup.encoder.model.logit_scale.exp())
    prompt_tokens = prompts.tokenize([config.prompt])

    def step_loss(rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        v = images[rows]
        u = prompts(prompt_tokens.expand(len(rows), -1), phi(v))
        return contrastive_loss(u, v, scale), {}

    started = time.perf_counter()
    fit(config, phi, step_loss, len(images), device,
        {"method": METHOD, "encoder": setup.encoder.identity, "prepare_seconds": round(setup.seconds, 2),
         "logit_scale": scale, "input_normalize": False}, resume, verbose)
    if verbose:
        print(f"pic2word trained in {time.perf_counter() - started:.0f} s -> {config.out}", flush=True)
    return Path(config.out)
