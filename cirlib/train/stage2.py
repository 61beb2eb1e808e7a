"""Stage 2: train a fusion module on cached features of a frozen encoder (CLIP4Cir's Combiner stage).

A readable loop: batch-based classification loss (queries against in-batch targets, logit scale
100), AdamW with weight decay on matrices, linear warmup then cosine decay per step, bf16 autocast
on CUDA by default (``precision``; "float32" trains in exact float32 anywhere), validation after
every epoch through a callable the caller passes in (the dataset's own metric; this layer knows no
metrics), the best checkpoint kept, a checkpoint of the last epoch that ``resume=True`` continues on
the same trajectory, and JSON + CSV logs headed by the config. Every epoch's batch order and text
forms come from (seed, epoch), and the random generator (dropout, router noise) is reseeded from
(seed, epoch, rank) at each epoch's start, so a resumed run repeats an uninterrupted one number for
number. Under ``torchrun`` each process takes its slice of every global batch; the targets of all
processes are gathered, so the loss and gradients are those of one process on the whole batch (up to
float rounding; with dropout each process draws its own masks).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..atomic import write_json, write_text
from ..config import check_precision
from ..encoders.device import compute_precision
from ..encoders.distributed import DistContext, gather_rows, init_distributed, mean_over_processes
from ..fusion import build_fusion, fuse, parameter_count
from .checkpoint import load_checkpoint, read_record, save_checkpoint
from .loss import batch_classification_loss
from .pretrain import parameter_groups
from .schedule import cosine_lr
from .triplets import TripletFeatures

Validate = Callable[[nn.Module], dict[str, float]]
LAST, BEST = "last.safetensors", "best.safetensors"


@dataclass
class FusionTrainConfig:
    """One fusion-training job (``cirlib train --config``): data, encoder, model, optimisation, output."""

    kind: str = "fusion"
    dataset: str = "fashioniq"            # fashioniq | cirr (the reader and the metric)
    data_root: str = "data/synth/synth-fashioniq"
    categories: list = field(default_factory=lambda: ["dress", "shirt", "toptee"])  # FashionIQ only
    model: str = "synthclip"              # load_encoder's model, pretrained and preprocess
    pretrained: str | None = None
    preprocess: str | None = None
    cache: str = "data/cache"
    fusion: str = "combiner"              # a name in cirlib.fusion.FUSIONS
    fusion_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 256                 # the global batch, split over processes under torchrun
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    logit_scale: float = 100.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"               # auto (bf16 autocast on CUDA, float32 on CPU) | float32 | bfloat16 | float16
    selection_metric: str | None = None   # default: FashionIQ "avg" = (R@10 + R@50)/2, CIRR "Avg"
    pseudo_triplets: dict | None = None   # PseudoTripletConfig fields (CLIP-CD augmentation), or None
    out: str = "runs/fusion"

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def to_json(self) -> dict:
        return asdict(self)


def epoch_plan(size: int, seed: int, epoch: int, forms: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(row order, text form per row) of one epoch, a pure function of its arguments."""
    generator = np.random.default_rng([seed, epoch, stream])
    return torch.from_numpy(generator.permutation(size)), torch.from_numpy(generator.integers(forms, size=size))


def reseed(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))


def _write_logs(out: Path, config: dict, log: list[dict]) -> None:
    write_json(out / "log.json", {"config": config, "log": log})
    columns = list(dict.fromkeys(key for row in log for key in row))
    buffer = io.StringIO()
    buffer.write(f"# config: {json.dumps(config)}\n")
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(log)
    write_text(out / "log.csv", buffer.getvalue())


def _resume_state(out: Path, config: dict, model: nn.Module, optimizer) -> tuple[int, list, dict | None]:
    record = read_record(out / LAST)
    differing = sorted(k for k in set(config) | set(record["config"]) if config.get(k) != record["config"].get(k))
    if differing:
        raise ValueError(f"{out / LAST} was written with another config (fields {', '.join(differing)} differ); "
                         "resume with the same config, or choose another --out")
    load_checkpoint(out / LAST, model, optimizer)
    return record["epoch"], record["log"], record.get("best")


def train_fusion(config: FusionTrainConfig, data: TripletFeatures, validate: Validate | None = None,
                 pseudo: TripletFeatures | None = None, pseudo_every: int = 0, resume: bool = False,
                 context: DistContext | None = None, progress: bool = True) -> dict:
    """Train ``config.fusion`` on ``data``; return {"best": row, "last": row, "model": module}.

    ``validate(model) -> metrics`` runs on the main process after every epoch (model in eval mode
    is the callee's business); the epoch with the highest ``config.selection_metric`` is saved to
    ``<out>/best.safetensors``. With ``pseudo`` and ``pseudo_every = k``, every (k+1)-th epoch
    trains on the pseudo triplets instead (CLIP-CD's k-to-1 alternation).
    """
    context = context or init_distributed(config.device)
    out, device, settings = Path(config.out), context.device, config.to_json()
    if context.is_main:
        print(f"train config: {json.dumps(settings)}", flush=True)
    torch.manual_seed(config.seed)
    model = build_fusion(config.fusion, data.embed_dim, **config.fusion_options).to(device)
    if config.batch_size % context.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {context.world_size} processes")
    local = config.batch_size // context.world_size
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    trains = parameter_count(model) > 0
    schedule = [pseudo if pseudo is not None and pseudo_every and (e + 1) % (pseudo_every + 1) == 0 else data
                for e in range(config.epochs if trains else 0)]
    steps = [len(d) // config.batch_size for d in schedule]
    if trains and min(steps) == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {min(len(d) for d in schedule)} triplets")
    start, log, best = 0, [], None
    if resume and (out / LAST).exists():
        start, log, best = _resume_state(out, settings, model, optimizer)
        if context.is_main:
            print(f"resumed after epoch {start} from {out / LAST}", flush=True)
    # Sparse routing leaves some experts without gradient in a batch: DDP must be told.
    wrapped = DistributedDataParallel(model, find_unused_parameters=config.fusion == "moe") \
        if context.world_size > 1 and trains else model
    selection = config.selection_metric or ("avg" if config.dataset == "fashioniq" else "Avg")
    started = time.perf_counter()
    for epoch in range(start, max(len(schedule), 1)):
        row: dict = {"epoch": epoch + 1}
        if trains:
            epoch_data, is_pseudo = schedule[epoch], schedule[epoch] is pseudo
            reseed(config.seed, epoch, context.rank)
            order, forms = epoch_plan(len(epoch_data), config.seed, epoch, epoch_data.texts.shape[1],
                                      stream=int(is_pseudo))
            model.train()
            first_step, losses = sum(steps[:epoch]), []
            bar = tqdm(range(steps[epoch]), desc=f"epoch {epoch + 1}/{len(schedule)}", unit="batch",
                       disable=not (progress and context.is_main), leave=False, mininterval=1.0)
            for step in bar:
                lr = cosine_lr(first_step + step, sum(steps), config.lr, config.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                rows = order[step * config.batch_size:(step + 1) * config.batch_size]
                rows = rows[context.rank * local:(context.rank + 1) * local]
                reference, text, target = (x.to(device, non_blocking=True) for x in epoch_data.batch(rows, forms[rows]))
                with compute_precision(device, config.precision):
                    query, aux = fuse(wrapped, reference, text)
                loss = batch_classification_loss(query.float(), gather_rows(target, context), config.logit_scale,
                                                 first_label=context.rank * local)
                if aux is not None:
                    loss = loss + aux.float()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            row.update({"train loss": mean_over_processes(float(np.mean(losses)), context), "lr": lr,
                        "pseudo": is_pseudo})
        if context.is_main:
            if validate is not None:
                metrics = validate(model)
                if selection not in metrics:
                    raise ValueError(f"selection_metric {selection!r} is not among the validation metrics "
                                     f"{', '.join(metrics)}")
                row.update(metrics)
            row["seconds"] = round(time.perf_counter() - started, 2)  # since this process started (or resumed)
            log.append(row)
            print(json.dumps(row), flush=True)
            if best is None or validate is None or row[selection] > best[selection]:
                best = row
                save_checkpoint(out / BEST, model, None, {"epoch": epoch + 1, "metrics": row, "config": settings,
                                                          "embed_dim": data.embed_dim})
            save_checkpoint(out / LAST, model, optimizer, {"epoch": epoch + 1, "log": log, "best": best,
                                                           "config": settings, "embed_dim": data.embed_dim})
            _write_logs(out, settings, log)
    return {"best": best, "last": log[-1] if log else None, "model": model}


def load_trained_fusion(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A fusion module from a checkpoint written by :func:`train_fusion`, in eval mode, and its record."""
    record = read_record(path)
    model = build_fusion(record["config"]["fusion"], record["embed_dim"], **record["config"]["fusion_options"])
    load_checkpoint(path, model)
    return model.to(device).eval(), record
