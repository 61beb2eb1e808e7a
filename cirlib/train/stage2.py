"""Stage 2: train a fusion module on cached features of a frozen encoder (CLIP4Cir's Combiner stage).

A readable loop: batch-based classification loss (queries against in-batch targets, logit scale
100), AdamW with weight decay on matrices, linear warmup then cosine decay or a constant rate per step
(``lr_schedule``; CLIP4Cir's stage 2: constant, no warmup), bf16 autocast
on CUDA by default (``precision``; "float32" trains in exact float32 anywhere), validation after
every epoch through a callable the caller passes in (the dataset's own metric; this layer knows no
metrics), the best checkpoint kept, a checkpoint of the last epoch that ``resume=True`` continues on
the same trajectory, and JSON + CSV logs headed by the config. Every epoch's batch order and text
forms come from (seed, epoch), and the random generator (dropout, router noise) is reseeded from
(seed, epoch, rank) at each epoch's start, so a resumed run repeats an uninterrupted one number for
number. Under ``torchrun`` each process takes its slice of every global batch; the targets of all
processes are gathered, so the loss and gradients are those of one process on the whole batch (up to
float rounding; with dropout each process draws its own masks).

A config holds its local paths absolute (:meth:`FusionTrainConfig.absolute_paths`): a relative ``data_root`` or
``cache``, or a ``model`` / ``pretrained`` that names a local folder or file, is resolved against the working
directory when the config is built, so the config saved in a run's checkpoints names the same files from any
directory (``cirlib eval`` works anywhere) and a resume may spell those paths differently (relative, absolute,
with ``..``). Symbolic links are kept as spelled (the dataset folder's name labels caches and tables).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cirlib.data.fashioniq import FashionIQ
from cirlib.encoders.loading import BUNDLED
from cirlib.encoders.transforms import PREPROCESS_KINDS
from cirlib.fusion import FUSIONS, build_fusion, fuse, option_types, parameter_count
from cirlib.metrics.protocols import PROTOCOLS, protocol, require_metric
from cirlib.train.checkpoint import load_checkpoint, read_record, save_checkpoint
from cirlib.train.loss import batch_classification_loss
from cirlib.train.pretrain import parameter_groups
from cirlib.train.pseudo_triplets import PseudoTripletConfig
from cirlib.train.run_folder import RunLayout, open_run
from cirlib.train.schedule import LR_SCHEDULES
from cirlib.train.triplets import TripletFeatures
from cirlib.util.atomic import write_json, write_text
from cirlib.util.config import DEVICE, PRECISIONS, check_mapping, nested, setting, validate
from cirlib.util.device import compute_precision
from cirlib.util.distributed import DistContext, gather_rows, init_distributed, mean_over_processes
from cirlib.util.errors import ConfigError

Validate = Callable[[nn.Module], dict[str, float]]
LAST, BEST = "last.safetensors", "best.safetensors"
TRAINABLE_DATASETS = tuple(name for name, rules in PROTOCOLS.items() if rules.training_split)  # fashioniq, cirr
FUSION_RUN = RunLayout("fusion training", LAST, "epoch", (LAST, BEST, "log.json", "log.csv", "results.json"))
"""What a fusion job writes in its run folder (``results.json``: :func:`cirlib.experiments.jobs.run_fusion_job`)."""


@dataclass
class FusionTrainConfig:
    """One fusion-training job (``cirlib train --config``): data, encoder, model, optimisation, output.

    Every field is validated when the config is built (:func:`cirlib.util.config.validate`): the fusion options by the
    types of the module's constructor, the pseudo-triplet settings as a :class:`PseudoTripletConfig`. Local paths
    are then made absolute (:meth:`absolute_paths`; the module docstring says why).
    """

    kind: str = setting("fusion", choices=("fusion",))
    dataset: str = setting("fashioniq", choices=TRAINABLE_DATASETS)   # the reader and the metric
    data_root: str = "data/synth/synth-fashioniq"
    categories: list = setting(factory=lambda: ["dress", "shirt", "toptee"], items=FashionIQ.CATEGORIES)
    model: str = "synthclip"              # load_encoder's model, pretrained and preprocess
    pretrained: str | None = None
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    quick_gelu: bool | None = None        # None: as the pretrained tag's config says (OpenAI weights: QuickGELU)
    on_missing: str = setting("error", choices=("error", "skip"))  # images a dataset lists but lacks: stop or skip
    cache: str = "data/cache"
    fusion: str = setting("combiner", choices=tuple(FUSIONS))
    fusion_options: dict = setting(factory=dict)
    epochs: int = setting(10, minimum=1)
    batch_size: int = setting(256, minimum=1)   # the global batch, split over processes under torchrun
    lr: float = setting(1e-4, above=0)
    weight_decay: float = setting(0.01, minimum=0)
    warmup_steps: int = setting(0, minimum=0)
    lr_schedule: str = setting("cosine", choices=tuple(LR_SCHEDULES))  # after warmup; CLIP4Cir: constant
    logit_scale: float = setting(100.0, above=0)
    seed: int = setting(0, minimum=0)
    device: str = setting("auto", **DEVICE)
    precision: str = setting("auto", choices=PRECISIONS)  # auto: bf16 autocast on CUDA, float32 on CPU
    selection_metric: str | None = None   # default: FashionIQ "avg" = (R@10 + R@50)/2, CIRR "Avg"
    pseudo_triplets: dict | None = None   # PseudoTripletConfig fields (CLIP-CD augmentation), or None
    out: str = "runs/fusion"

    def __post_init__(self) -> None:
        validate(self)
        check_categories(type(self).__name__, self.dataset, self.categories)
        self.fusion_options = check_mapping(type(self).__name__, "fusion_options", self.fusion_options,
                                            option_types(self.fusion))
        if self.pseudo_triplets is not None:
            nested(self, "pseudo_triplets", PseudoTripletConfig)
        self.absolute_paths()

    def absolute_paths(self) -> None:
        """Resolve ``data_root`` and ``cache``, and ``model`` / ``pretrained`` where they name a local folder or
        file, against the working directory, so that the saved config means the same files from anywhere."""
        self.data_root, self.cache = os.path.abspath(self.data_root), os.path.abspath(self.cache)
        self.model, self.pretrained = local_path(self.model), local_path(self.pretrained)

    def to_json(self) -> dict:
        return asdict(self)


def check_categories(source: str, dataset: str, categories: list) -> None:
    """A FashionIQ job's ``categories`` name at least one category (else a ConfigError naming the field and
    ``source``, the config's class); stage 1 and stage 2 check them alike."""
    if protocol(dataset).has_categories and not categories:
        raise ConfigError(source, "categories", categories, "at least one of " + ", ".join(FashionIQ.CATEGORIES))


def local_path(value: str | None) -> str | None:
    """``value`` made absolute when it names an existing file or folder; a bundled model name, an open_clip
    architecture or pretrained tag, or None, unchanged."""
    if value is None or value in BUNDLED or not Path(value).exists():
        return value
    return os.path.abspath(value)


def epoch_plan(size: int, seed: int, epoch: int, forms: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(row order, text form per row) of one epoch, a pure function of its arguments."""
    generator = np.random.default_rng([seed, epoch, stream])
    return torch.from_numpy(generator.permutation(size)), torch.from_numpy(generator.integers(forms, size=size))


def reseed(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))


def selection_name(selection_metric: str | None, dataset: str) -> str:
    """The validation metric that picks a run's best epoch: ``selection_metric``, else the dataset's protocol's
    ``select_by``: FashionIQ's "avg" = (R@10 + R@50)/2 or CIRR's "Avg"."""
    return selection_metric or protocol(dataset).select_by


def write_logs(out: Path, config: dict, log: list[dict]) -> None:
    """``log.json`` and ``log.csv`` in the run folder ``out``, both headed by the config."""
    write_json(out / "log.json", {"config": config, "log": log})
    columns = list(dict.fromkeys(key for row in log for key in row))
    buffer = io.StringIO()
    buffer.write(f"# config: {json.dumps(config)}\n")
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(log)
    write_text(out / "log.csv", buffer.getvalue())


@dataclass
class EpochLog:
    """A training run's log across epochs and what it writes after each one (stage 1 and stage 2 share it):
    validation, the log row, the best checkpoint (weights only), the logs, then the last checkpoint (weights and
    optimizer state), in the order :mod:`cirlib.train.run_folder` relies on."""

    out: Path
    record: dict        # what both checkpoints hold besides the progress: "config" (the run's), and more
    total: int          # the run's epochs
    selection: str      # the validation metric that picks the best epoch
    log: list[dict] = field(default_factory=list)
    best: dict | None = None
    started: float = field(default_factory=time.perf_counter)

    def resume(self, previous: dict) -> int:
        """Continue the run whose last checkpoint record is ``previous``; return the epochs it has done."""
        self.log, self.best = previous["log"], previous.get("best")
        return previous["epoch"]

    def close(self, model: nn.Module, optimizer: torch.optim.Optimizer, row: dict, validate: Validate | None,
              verbose: bool) -> None:
        """Validate the model after the epoch ``row["epoch"]``, add its row to the log and write the files."""
        best, selection = self.best, self.selection
        if validate is not None:
            metrics = validate(model)
            require_metric(selection, metrics, "validation", "selection_metric", "the validation metrics")
            row.update(metrics)
        row["seconds"] = round(time.perf_counter() - self.started, 2)  # since this process started (or resumed)
        self.log.append(row)
        if verbose:
            print(json.dumps(row), flush=True)
        if best is None or validate is None or row[selection] > best[selection]:
            self.best = row
            save_checkpoint(self.out / BEST, model, None, {"epoch": row["epoch"], "metrics": row, **self.record})
        write_logs(self.out, self.record["config"], self.log)  # before the checkpoint that records the epoch
        save_checkpoint(self.out / LAST, model, optimizer, {"epoch": row["epoch"], "epochs": self.total,
                                                            "log": self.log, "best": self.best, **self.record})


def train_fusion(config: FusionTrainConfig, data: TripletFeatures, validate: Validate | None = None,
                 pseudo: TripletFeatures | None = None, pseudo_every: int = 0, resume: bool = False,
                 overwrite: bool = False, context: DistContext | None = None, progress: bool = True,
                 verbose: bool = True) -> dict:
    """Train ``config.fusion`` on ``data`` in the run folder ``config.out``; return {"best": row, "last": row,
    "model": module}.

    ``validate(model) -> metrics`` runs on the main process after every epoch (model in eval mode
    is the callee's business); the epoch with the highest ``config.selection_metric`` is saved to
    ``<out>/best.safetensors``. With ``pseudo`` and ``pseudo_every = k``, every (k+1)-th epoch
    trains on the pseudo triplets instead (CLIP-CD's k-to-1 alternation). The run folder is held for
    the whole job (:mod:`cirlib.train.run_folder`): one that holds a run is refused unless ``resume``
    (continue it; a finished run is reused as is) or ``overwrite`` (replace it). ``progress`` shows a bar per
    epoch; ``verbose`` prints the config, one JSON row per epoch and a resume (False: a notebook's quiet run).
    """
    context = context or init_distributed(config.device)
    with open_run(config.out, FUSION_RUN, config.to_json(), resume, overwrite, main=context.is_main,
                  verbose=verbose) as previous:
        return fusion_loop(config, data, previous, context, validate, pseudo, pseudo_every, progress, verbose)


def fusion_loop(config: FusionTrainConfig, data: TripletFeatures, previous: dict | None, context: DistContext,
                validate: Validate | None = None, pseudo: TripletFeatures | None = None, pseudo_every: int = 0,
                progress: bool = True, verbose: bool = True) -> dict:
    """:func:`train_fusion`'s training in a run folder its caller holds (``open_run``), continuing the run whose
    checkpoint record is ``previous`` (None: from the start); ``progress`` and ``verbose`` as there."""
    out, device, settings = Path(config.out), context.device, config.to_json()
    if context.is_main and verbose:
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
    total = max(len(schedule), 1)  # a fusion without parameters is validated once
    run = EpochLog(out, {"config": settings, "embed_dim": data.embed_dim}, total,
                   selection_name(config.selection_metric, config.dataset))
    start = 0
    if previous is not None:
        load_checkpoint(out / LAST, model, optimizer)
        start = run.resume(previous)
    # Sparse routing leaves some experts without gradient in a batch: DDP must be told.
    wrapped = DistributedDataParallel(model, find_unused_parameters=config.fusion == "moe") \
        if context.world_size > 1 and trains else model
    for epoch in range(start, total):
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
                lr = LR_SCHEDULES[config.lr_schedule](first_step + step, sum(steps), config.lr, config.warmup_steps)
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
            run.close(model, optimizer, row, validate, verbose)
    return {"best": run.best, "last": run.log[-1] if run.log else None, "model": model}


def load_trained_fusion(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A fusion module from a checkpoint written by :func:`train_fusion`, in eval mode, and its record."""
    record = read_record(path, required=("epoch", "config", "embed_dim"))
    model = build_fusion(record["config"]["fusion"], record["embed_dim"], **record["config"]["fusion_options"])
    load_checkpoint(path, model)
    return model.to(device).eval(), record
