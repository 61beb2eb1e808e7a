"""Stage 1: fine-tune CLIP's image and text encoders for composed retrieval (CLIP4Cir's first stage).

Each training triplet (reference image, modification text, target image) is encoded by the model being trained:
query = normalize(v + t), the element-wise sum of the raw reference-image and text features, target =
normalize(image feature of the target), batch-based classification loss (queries against in-batch targets,
logit scale 100; :mod:`cirlib.train.loss`). Both towers train; stage 2 (``kind: fusion``) then trains a fusion
module on the fine-tuned, frozen features (``pretrained: <run>/best.safetensors``).

The images are read through the dataset readers and decoded by DataLoader workers with the encoder's own
preprocessing; FashionIQ's text is drawn per triplet and epoch among CLIP4Cir's four forms, as in stage 2. The
model stays in eval mode while it trains, as CLIP4Cir's does: a ResNet tower's batch-norm statistics stay those
of the pretrained model, and CLIP has no dropout. ``grad_checkpointing`` recomputes activations in the backward
pass instead of keeping them (CLIP4Cir's RN50x4 at batch 128 runs out of memory on 32-40 GB GPUs without it).

The loop shares stage 2's machinery (:mod:`cirlib.train.stage2`): validation after every epoch through a callable
(here it receives the :class:`~cirlib.encoders.loading.Encoder` with the current weights; this layer knows no
metrics), ``best.safetensors`` / ``last.safetensors`` (weights; optimizer state in last), the run-folder rules,
``log.json`` / ``log.csv`` headed by the config, and every epoch's order and text forms from (seed, epoch), so a
resumed run repeats an uninterrupted one number for number. A checkpoint's model tensors are those of the open_clip
model, so ``load_encoder(<model>, pretrained="<run>/best.safetensors")`` loads the fine-tuned encoder. One process
(no torchrun).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cirlib.data import CIRR, FashionIQ
from cirlib.encoders.loading import Encoder
from cirlib.encoders.transforms import PREPROCESS_KINDS, build_preprocess
from cirlib.features.extract import ImageFiles, Unreadable, collate_images, default_workers
from cirlib.features.splits import reader_missing
from cirlib.metrics.protocols import protocol
from cirlib.train.checkpoint import load_checkpoint
from cirlib.train.loss import batch_classification_loss
from cirlib.train.pretrain import parameter_groups
from cirlib.train.run_folder import RunLayout, open_run
from cirlib.train.schedule import LR_SCHEDULES
from cirlib.train.stage2 import (
    BEST,
    LAST,
    TRAINABLE_DATASETS,
    EpochLog,
    check_categories,
    epoch_plan,
    local_path,
    reseed,
    selection_name,
)
from cirlib.train.triplets import fashioniq_training_texts
from cirlib.util.config import DEVICE, PRECISIONS, setting, validate
from cirlib.util.device import compute_precision
from cirlib.util.errors import ConfigError

EncoderValidate = Callable[[Encoder], dict[str, float]]
STAGE1_RUN = RunLayout("stage-1 fine-tuning", LAST, "epoch", (LAST, BEST, "log.json", "log.csv", "results.json"))
"""What a stage-1 job writes in its run folder (``results.json``: :func:`cirlib.experiments.jobs.run_stage1_job`)."""


@dataclass
class Stage1Config:
    """One stage-1 job (``cirlib train --config``, ``kind: stage1``): data, the encoder to fine-tune, optimisation,
    output. Validated when built, like :class:`~cirlib.train.stage2.FusionTrainConfig`; local paths made absolute.
    Defaults follow CLIP4Cir's README command (AdamW, lr 2e-6 constant, batch 128); its epochs (100) are not."""

    kind: str = setting("stage1", choices=("stage1",))
    dataset: str = setting("fashioniq", choices=TRAINABLE_DATASETS)   # the reader and the metric
    data_root: str = "data/synth/synth-fashioniq"
    categories: list = setting(factory=lambda: ["dress", "shirt", "toptee"], items=FashionIQ.CATEGORIES)
    model: str = "synthclip"              # load_encoder's model, pretrained and preprocess: the encoder to fine-tune
    pretrained: str | None = None
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    quick_gelu: bool | None = None        # None: as the pretrained tag's config says (OpenAI weights: QuickGELU)
    on_missing: str = setting("error", choices=("error", "skip"))  # images a dataset lists but lacks: stop or skip
    epochs: int = setting(3, minimum=1)
    batch_size: int = setting(128, minimum=2)   # in-batch targets: a batch of one has no negative
    lr: float = setting(2e-6, above=0)
    weight_decay: float = setting(0.01, minimum=0)
    warmup_steps: int = setting(0, minimum=0)
    lr_schedule: str = setting("constant", choices=tuple(LR_SCHEDULES))  # after warmup; CLIP4Cir: constant
    logit_scale: float = setting(100.0, above=0)
    seed: int = setting(0, minimum=0)
    device: str = setting("auto", **DEVICE)
    precision: str = setting("auto", choices=PRECISIONS)  # auto: bf16 autocast on CUDA, float32 on CPU
    grad_checkpointing: bool = False      # recompute activations in the backward pass: less memory, more compute
    selection_metric: str | None = None   # default: FashionIQ "avg" = (R@10 + R@50)/2, CIRR "Avg"
    out: str = "runs/stage1"

    def __post_init__(self) -> None:
        validate(self)
        check_categories(type(self).__name__, self.dataset, self.categories)
        self.data_root = os.path.abspath(self.data_root)
        self.model, self.pretrained = local_path(self.model), local_path(self.pretrained)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ImageTriplets:
    """Training triplets as image files: triplet i is (paths[reference[i]], texts[i][form], paths[target[i]]).
    ``missing``: what the reader skipped (``on_missing="skip"``), as ``TripletFeatures.missing`` holds it."""

    paths: list[Path]                  # every image a triplet names, once
    reference: list[int]
    target: list[int]
    texts: list[tuple[str, ...]]       # the text forms of each triplet: FashionIQ four, CIRR one
    missing: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.reference)

    @property
    def forms(self) -> int:
        return len(self.texts[0]) if self.texts else 1

    def batch_images(self, rows: list[int]) -> list[int]:
        """Rows of ``paths`` for triplets ``rows``: their references, then their targets."""
        return [self.reference[r] for r in rows] + [self.target[r] for r in rows]


def image_triplets(config: Stage1Config, split: str = "train") -> ImageTriplets:
    """The ``split`` triplets of the config's dataset (FashionIQ: its ``categories``, with CLIP4Cir's four training
    text forms; CIRR: the caption and the hard target); ``config.on_missing`` applies."""
    if protocol(config.dataset).has_categories:
        reader = FashionIQ(config.data_root, config.on_missing)
        listed = [(t.candidate, t.target, fashioniq_training_texts(t.captions))
                  for category in config.categories for t in reader.triplets(category, split)]
        path_of = reader.image_path
    else:
        reader = CIRR(config.data_root, config.on_missing)
        listed = [(t.reference, t.target_hard, (t.caption,)) for t in reader.triplets(split)]
        path_of = functools.partial(reader.image_path, split=split)
    names = sorted({name for reference, target, _ in listed for name in (reference, target)})
    row = {name: i for i, name in enumerate(names)}
    return ImageTriplets([path_of(name) for name in names], [row[r] for r, _, _ in listed],
                         [row[t] for _, t, _ in listed], [texts for _, _, texts in listed], reader_missing(reader))


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass instead of storing them: open_clip's ``set_grad_checkpointing``
    for transformer towers, and every block of a ResNet image tower's four stages (open_clip's switch does nothing
    for ResNets such as CLIP4Cir's RN50x4). The state dict is unchanged."""
    model.set_grad_checkpointing(True)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        stage = getattr(model.visual, name, None)
        if isinstance(stage, nn.Sequential):
            stage.forward = functools.partial(checkpoint_sequential, stage, len(stage), use_reentrant=False)


def sum_fusion_loss(model: nn.Module, pixels: torch.Tensor, tokens: torch.Tensor, logit_scale: float,
                    precision: str = "float32") -> torch.Tensor:
    """Stage 1's loss: ``pixels`` holds the references then the targets of a batch, ``tokens`` its texts; query
    normalize(v + t) against the in-batch targets (the loss normalises), in float32 whatever ``precision``."""
    with compute_precision(pixels.device, precision):
        images, texts = model.encode_image(pixels), model.encode_text(tokens)
    reference, target = images.float().chunk(2)
    return batch_classification_loss(reference + texts.float(), target, logit_scale)


def train_stage1(config: Stage1Config, encoder: Encoder, triplets: ImageTriplets,
                 validate: EncoderValidate | None = None, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, verbose: bool = True) -> dict:
    """Fine-tune ``encoder`` (the one ``config`` names, loaded by the caller; trained in place) on ``triplets`` in
    the run folder ``config.out``; return {"best": row, "last": row}. ``validate(encoder)`` scores the current
    weights after every epoch; the run folder's rules and ``progress`` / ``verbose`` are
    :func:`~cirlib.train.stage2.train_fusion`'s."""
    with open_run(config.out, STAGE1_RUN, config.to_json(), resume, overwrite, verbose=verbose) as previous:
        return stage1_loop(config, encoder, triplets, previous, validate, progress, verbose)


def stage1_loop(config: Stage1Config, encoder: Encoder, triplets: ImageTriplets, previous: dict | None,
                validate: EncoderValidate | None = None, progress: bool = True, verbose: bool = True) -> dict:
    """:func:`train_stage1`'s training in a run folder its caller holds, continuing the run whose checkpoint record
    is ``previous`` (None: from the start)."""
    steps = len(triplets) // config.batch_size
    if steps == 0:
        raise ConfigError(type(config).__name__, "batch_size", config.batch_size,
                          f"at most the {len(triplets)} training triplets")
    settings = config.to_json()
    if verbose:
        print(f"train config: {json.dumps(settings)}", flush=True)
    model = encoder.model.eval()
    if config.grad_checkpointing:
        enable_grad_checkpointing(model)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    run = EpochLog(Path(config.out), {"config": settings, "base encoder": encoder.identity}, config.epochs,
                   selection_name(config.selection_metric, config.dataset))
    start = 0
    if previous is not None:
        load_checkpoint(Path(config.out) / LAST, model, optimizer)
        start = run.resume(previous)
    scores = None if validate is None else (lambda _model: validate(encoder))
    for epoch in range(start, config.epochs):
        row = {"epoch": epoch + 1, **_train_epoch(config, encoder, triplets, optimizer, epoch, steps, progress)}
        run.close(model, optimizer, row, scores, verbose)
    return {"best": run.best, "last": run.log[-1] if run.log else None}


def _train_epoch(config: Stage1Config, encoder: Encoder, triplets: ImageTriplets, optimizer: torch.optim.Optimizer,
                 epoch: int, steps: int, progress: bool) -> dict:
    """One epoch of ``steps`` full batches in the order of (seed, epoch); its mean train loss and last rate."""
    reseed(config.seed, epoch, 0)
    order, forms = epoch_plan(len(triplets), config.seed, epoch, triplets.forms)
    batches = [order[step * config.batch_size:(step + 1) * config.batch_size].tolist() for step in range(steps)]
    images = ImageFiles(triplets.paths, build_preprocess(encoder.preprocess_config))
    loader = DataLoader(images, batch_sampler=[triplets.batch_images(rows) for rows in batches],
                        num_workers=default_workers(), collate_fn=collate_images,
                        pin_memory=encoder.device.type == "cuda")
    losses, lr = [], config.lr
    bar = tqdm(zip(batches, loader), total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
               disable=not progress, leave=False, mininterval=1.0)
    for step, (rows, pixels) in enumerate(bar):
        if isinstance(pixels, Unreadable):
            raise pixels.error()
        lr = LR_SCHEDULES[config.lr_schedule](epoch * steps + step, config.epochs * steps, config.lr,
                                              config.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        tokens = encoder.tokenizer([triplets.texts[r][int(forms[r])] for r in rows])
        loss = sum_fusion_loss(encoder.model, pixels.to(encoder.device, non_blocking=True),
                               tokens.to(encoder.device), config.logit_scale, config.precision)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return {"train loss": float(np.mean(losses)), "lr": lr}
