"""Contrastive pretraining of a small CLIP on the synthetic pretraining stream (``cirlib pretrain``).

A readable loop: symmetric InfoNCE with a learnable temperature (open_clip's ``ClipLoss``), AdamW,
linear warmup then cosine decay, bf16 autocast on CUDA (float32 on CPU; ``precision``), a checkpoint
every ``checkpoint_every`` steps that ``--resume`` continues exactly (same batches, same numbers),
and text->image recall on held-out pairs. The stream's first ``pool_size`` pairs are rendered once
and kept in memory as uint8 pixels; batches are drawn from a seeded permutation per epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from open_clip.loss import ClipLoss
from tqdm.auto import tqdm

from cirlib.data.synth.pretrain import pretraining_pair
from cirlib.encoders.clip_model import build_clip, build_tokenizer, export_model_dir
from cirlib.encoders.transforms import PREPROCESS_KINDS, PreprocessConfig, geometry, uint8_to_input
from cirlib.train.checkpoint import load_checkpoint, save_checkpoint
from cirlib.train.run_folder import RunLayout, open_run
from cirlib.train.schedule import cosine_lr
from cirlib.util.atomic import write_json
from cirlib.util.config import DEVICE, PRECISIONS, setting, validate
from cirlib.util.device import compute_precision, exact_float32, resolve_device
from cirlib.util.errors import ConfigError
from cirlib.util.workers import process_pool

SYNTHCLIP_ARCH = {
    "embed_dim": 256,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 192, "head_width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
HELD_OUT_OFFSET = 10_000_000  # held-out pairs are stream indices from here on, far past any pool
CHECKPOINT = "checkpoint.safetensors"
PRETRAIN_RUN = RunLayout("pretraining", CHECKPOINT, "step", ("config.json", CHECKPOINT, "log.json",
                                                            "model/open_clip_config.json",
                                                            "model/open_clip_model.safetensors"))
"""What ``cirlib pretrain`` writes in its run folder."""


@dataclass
class PretrainConfig:
    """One pretraining job; printed at the start and saved beside the checkpoints."""

    out: str = "runs/synthclip"
    model: dict = field(default_factory=lambda: json.loads(json.dumps(SYNTHCLIP_ARCH)))
    preprocess: str = setting("squarepad", choices=PREPROCESS_KINDS)
    seed: int = setting(0, minimum=0)
    steps: int = setting(2000, minimum=1)
    batch_size: int = setting(128, minimum=1)
    lr: float = setting(1e-3, above=0)
    weight_decay: float = setting(0.1, minimum=0)
    warmup_steps: int = setting(100, minimum=0)
    pool_size: int = setting(60_000, minimum=1)
    eval_pairs: int = setting(1000, minimum=1)
    eval_every: int = setting(200, minimum=1)
    checkpoint_every: int = setting(200, minimum=1)
    device: str = setting("auto", **DEVICE)
    precision: str = setting("auto", choices=PRECISIONS)  # auto: bf16 autocast on CUDA, float32 on CPU
    workers: int | None = setting(None, minimum=1)

    def __post_init__(self) -> None:
        validate(self)
        if self.pool_size < self.batch_size:
            raise ConfigError(type(self).__name__, "pool_size", self.pool_size,
                              f"at least batch_size ({self.batch_size}): a batch is drawn from the pool")

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(kind=self.preprocess, image_size=self.model["vision_cfg"]["image_size"])


def _render(args: tuple[int, int, PreprocessConfig, str | None]) -> tuple[np.ndarray, str]:
    seed, index, preprocess, quality = args
    image, caption = pretraining_pair(seed, index, quality)
    return np.asarray(geometry(preprocess)(image), dtype=np.uint8).transpose(2, 0, 1), caption


def render_pairs(seed: int, indices: range, preprocess: PreprocessConfig, workers: int | None = None,
                 desc: str = "render", quality: str | None = None) -> tuple[torch.Tensor, list[str]]:
    """Pixels (N, 3, S, S) uint8 after the preprocess geometry, and captions, of stream pairs."""
    tasks = [(seed, i, preprocess, quality) for i in indices]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(tasks) < 256:
        results = [_render(t) for t in tqdm(tasks, desc=desc, unit="pair", mininterval=2.0)]
    else:
        with process_pool(workers) as pool:
            results = list(tqdm(pool.imap(_render, tasks, chunksize=128), total=len(tasks), desc=desc, unit="pair",
                                mininterval=2.0))
    return torch.from_numpy(np.stack([r[0] for r in results])), [r[1] for r in results]


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: not on gains, biases, embeddings of scalars or the temperature
    (decaying the learnable logit scale would pull the softmax temperature back up)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (decay if parameter.ndim >= 2 and "logit_scale" not in name else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(step: int, config: PretrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to zero at ``steps``."""
    return cosine_lr(step, config.steps, config.lr, config.warmup_steps)


def batch_indices(step: int, config: PretrainConfig) -> np.ndarray:
    """The pool rows of batch ``step``: a seeded permutation per epoch, so resuming repeats them."""
    per_epoch = config.pool_size // config.batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([config.seed, epoch]).permutation(config.pool_size)
    return order[position * config.batch_size:(position + 1) * config.batch_size]


@torch.no_grad()
def text_to_image_recall(model, images: torch.Tensor, tokens: torch.Tensor, preprocess: PreprocessConfig,
                         device: torch.device, ks=(1, 5, 10), batch: int = 500) -> dict[int, float]:
    """Recall@K (percent) of each caption's own image among all ``images`` (uint8, after ``geometry``)."""
    was_training = model.training
    model.eval()
    image_features, text_features = [], []
    for start in range(0, len(images), batch):
        with exact_float32():
            pixels = uint8_to_input(images[start:start + batch].to(device), preprocess)
            image_features.append(model.encode_image(pixels, normalize=True).float())
            text_features.append(model.encode_text(tokens[start:start + batch].to(device), normalize=True).float())
    similarity = torch.cat(text_features) @ torch.cat(image_features).T
    rank = (similarity > similarity.diag()[:, None]).sum(dim=1)
    model.train(was_training)
    return {k: float((rank < k).float().mean() * 100) for k in ks}


def pretrain(config: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Train, checkpoint, evaluate; export the final model to ``<out>/model``. Returns the last log row.

    The run folder is held for the whole job (:mod:`cirlib.train.run_folder`): one that holds a run is
    refused unless ``resume`` (continue it; a finished run is reused as is, nothing rendered or written)
    or ``overwrite`` (replace it).
    """
    print(f"pretrain config: {json.dumps(asdict(config))}", flush=True)
    with open_run(config.out, PRETRAIN_RUN, asdict(config), resume, overwrite) as previous:
        return previous["log"][-1] if PRETRAIN_RUN.finished(previous) else _train(config, previous)


def _export(out: Path, model: torch.nn.Module, config: PretrainConfig, log: list[dict]) -> None:
    """A finished run's log and model folder, written before its last checkpoint (see run_folder)."""
    write_json(out / "log.json", log)
    export_model_dir(out / "model", model.eval(), config.model,
                     {**config.preprocess_config.to_json(), "trained_by": "cirlib pretrain", "steps": config.steps})


def _train(config: PretrainConfig, previous: dict | None) -> dict:
    """:func:`pretrain`'s training, continuing the run whose checkpoint record is ``previous`` (None: afresh)."""
    out, device = Path(config.out), resolve_device(config.device)
    write_json(out / "config.json", asdict(config))
    torch.manual_seed(config.seed)
    model = build_clip(config.model).to(device).train()
    tokenizer = build_tokenizer(config.model)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    step, log = 0, []
    if previous is not None:
        load_checkpoint(out / CHECKPOINT, model, optimizer)
        step, log = previous["step"], previous["log"]

    images, captions = render_pairs(config.seed, range(config.pool_size), config.preprocess_config, config.workers,
                                    desc="render pool")
    tokens = tokenizer(captions)
    held_images, held_captions = render_pairs(config.seed, range(HELD_OUT_OFFSET, HELD_OUT_OFFSET + config.eval_pairs),
                                              config.preprocess_config, config.workers, desc="render held-out")
    held_tokens = tokenizer(held_captions)
    loss_fn = ClipLoss()
    # Training seconds accumulate across resumes (the pool rendering is not counted).
    already = max((r["seconds"] for r in log if "seconds" in r), default=0.0)
    started = time.perf_counter() - already
    progress = tqdm(range(step, config.steps), initial=step, total=config.steps, desc="pretrain", mininterval=5.0)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        rows = torch.from_numpy(batch_indices(step, config))
        with compute_precision(device, config.precision):
            pixels = uint8_to_input(images[rows].to(device), config.preprocess_config)
            image_features, text_features, logit_scale = model(pixels, tokens[rows].to(device))
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        done = step + 1
        row = {"step": done, "loss": round(loss.item(), 5), "lr": optimizer.param_groups[0]["lr"],
               "logit_scale": round(model.logit_scale.exp().item(), 3)}
        if done % config.eval_every == 0 or done == config.steps:
            recall = text_to_image_recall(model, held_images, held_tokens, config.preprocess_config, device)
            row.update({f"held-out t2i R@{k}": round(v, 2) for k, v in recall.items()})
            row["seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(row), flush=True)
        log.append(row)
        progress.set_postfix(loss=row["loss"])
        if done % config.checkpoint_every == 0 or done == config.steps:
            if done == config.steps:
                _export(out, model, config, log)
            save_checkpoint(out / CHECKPOINT, model, optimizer, {"step": done, "log": log, "config": asdict(config)})
    return log[-1]
