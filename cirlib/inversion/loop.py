"""What the three inversion trainers share: the base config, setup, and one readable training loop.

The loop trains only the mapping network phi; the CLIP encoders stay frozen. Each step's random
draws (batch rows, dropout, noise) are a pure function of (seed, step), so a resumed run repeats
the numbers of an uninterrupted one. The run folder holds ``config.json``, ``log.json`` and
``checkpoint.safetensors`` (``cirlib.train.checkpoint``: phi's weights, AdamW state, and a record
with the config, phi's sizes, the encoder identity and the timings); every ``train_<method>`` is an
:func:`inversion_job`, which holds that folder for the whole job (``cirlib.train.run_folder``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cirlib.encoders.loading import Encoder, config_encoder, describe
from cirlib.encoders.transforms import PREPROCESS_KINDS
from cirlib.inversion.inject import PromptEncoder
from cirlib.inversion.mapping import ACTIVATIONS, Phi, PhiConfig, build_phi, phi_record
from cirlib.inversion.stream import StreamFeatures, stream_features
from cirlib.train.checkpoint import load_checkpoint, read_record, save_checkpoint
from cirlib.train.pretrain import batch_indices
from cirlib.train.run_folder import RunLayout, open_run
from cirlib.util.atomic import write_json
from cirlib.util.config import DEVICE, PRECISIONS, setting, validate
from cirlib.util.device import compute_precision
from cirlib.util.errors import ConfigError, FileError

CHECKPOINT = "checkpoint.safetensors"
INVERSION_FILES = ("config.json", CHECKPOINT, "log.json")  # what every inversion job writes in its run folder
# A step's loss: (loss tensor, extra numbers for the log) for the training rows given.
StepLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
# A method's trainer: ``train(config, resume, verbose) -> run folder``.
Trainer = Callable[..., Path]


@dataclass
class InversionConfig:
    """Fields every inversion job has; each method's config adds its own (and its own defaults)."""

    out: str = "runs/inversion"
    model: str = "synthclip"          # load_encoder's first argument: bundled name, model folder, architecture
    pretrained: str | None = None
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    quick_gelu: bool | None = None    # None: as the pretrained tag's config says (OpenAI weights: QuickGELU)
    cache: str = "data/cache"         # where the stream features are cached
    stream_seed: int = setting(0, minimum=0)             # the synthetic pretraining stream the pairs come from
    stream_start: int = setting(2_000_000, minimum=0)    # far from synthclip's pretraining pool and held-out pairs
    train_pairs: int = setting(20_000, minimum=1)
    seed: int = setting(0, minimum=0)
    steps: int = setting(500, minimum=1)
    batch_size: int = setting(256, minimum=1)
    lr: float = setting(1e-4, above=0)
    weight_decay: float = setting(0.01, minimum=0)
    phi_hidden_mult: int = setting(4, minimum=1)         # phi's hidden width = this x the CLIP feature width
    phi_layers: int = setting(2, minimum=1)
    phi_dropout: float = setting(0.5, minimum=0, maximum=1)
    phi_activation: str = setting("gelu", choices=tuple(ACTIVATIONS))
    phi_dropout_first: bool = False
    template: str = "a photo of $ that {}"  # query template at evaluation; "$" is the placeholder
    placeholder: str = setting("$", pattern=r"\S+", meaning="a non-empty word without spaces")
    log_every: int = setting(50, minimum=1)
    checkpoint_every: int = setting(250, minimum=1)
    device: str = setting("auto", **DEVICE)
    precision: str = setting("auto", choices=PRECISIONS)  # auto: bf16 autocast on CUDA, float32 on CPU
    workers: int | None = setting(None, minimum=1)

    def __post_init__(self) -> None:
        validate(self)
        if "{}" not in self.template or self.placeholder not in self.template:
            raise ConfigError(type(self).__name__, "template", self.template,
                              f"a text holding the placeholder {self.placeholder!r} and {{}} (where the edit goes)")


@dataclass
class Setup:
    """A job's frozen encoder, prompt encoder and stream features."""

    encoder: Encoder
    prompts: PromptEncoder
    stream: StreamFeatures
    seconds: float


def prepare(config: InversionConfig, method: str, verbose: bool = True) -> Setup:
    """Print (``verbose``) and save the config, load and freeze the encoder, and load (or compute) the stream
    features."""
    started = time.perf_counter()
    if verbose:
        print(f"{method} config: {json.dumps(asdict(config))}", flush=True)
    write_json(Path(config.out) / "config.json", {"method": method, **asdict(config)})
    encoder = config_encoder(config)
    if verbose:
        print(describe(encoder), flush=True)
    stream = stream_features(encoder, config.cache, config.stream_seed, config.stream_start, config.train_pairs,
                             config.workers)
    return Setup(encoder, PromptEncoder.from_encoder(encoder, config.placeholder),
                 stream, time.perf_counter() - started)


def inversion_job(*method_files: str) -> Callable[[Trainer], Trainer]:
    """Make ``train(config, resume, verbose)`` a job that holds its run folder throughout
    (``cirlib.train.run_folder``; ``method_files``: what the method writes there besides INVERSION_FILES) and
    takes ``overwrite``. A finished run is reused as is: nothing is loaded or written. ``verbose`` (default True,
    as on the command line) prints the config, the training log and a resume; False keeps a notebook quiet."""
    layout = RunLayout("inversion training", CHECKPOINT, "step", INVERSION_FILES + method_files)

    def decorate(train: Trainer) -> Trainer:
        @functools.wraps(train)
        def job(config: InversionConfig, resume: bool = False, overwrite: bool = False, verbose: bool = True) -> Path:
            with open_run(config.out, layout, asdict(config), resume, overwrite, verbose=verbose) as previous:
                return Path(config.out) if layout.finished(previous) else train(config, resume, verbose)
        return job
    return decorate


def make_phi(config: InversionConfig, prompts: PromptEncoder, input_dim: int) -> Phi:
    """phi for ``config`` on the encoder's device, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    phi_config = PhiConfig(input_dim=input_dim, output_dim=prompts.width, hidden_dim=config.phi_hidden_mult * input_dim,
                           hidden_layers=config.phi_layers, dropout=config.phi_dropout,
                           activation=config.phi_activation, dropout_first=config.phi_dropout_first)
    return build_phi(phi_config).to(prompts.device)


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned ``a`` and ``b`` (cosine logits times ``scale``)."""
    logits = scale * F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def step_seed(seed: int, step: int) -> int:
    """The torch seed of one training step (dropout, noise): the same on resume."""
    return (seed * 1_000_003 + step) % (2**63)


def fit(config: InversionConfig, phi: Phi, step_loss: StepLoss, rows: int, device: torch.device,
        record: dict, resume: bool = False, verbose: bool = True) -> list[dict]:
    """Train ``phi`` for ``config.steps`` AdamW steps on batches of ``rows`` training rows; log (printed every
    ``config.log_every`` steps when ``verbose``) and checkpoint. ``record`` (method, encoder, timings so far) is
    stored in every checkpoint. ``resume`` continues from the run folder's checkpoint (checked by
    :func:`inversion_job`)."""
    out = Path(config.out)
    optimizer = torch.optim.AdamW(phi.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    log, start = [], 0
    if resume and (out / CHECKPOINT).is_file():
        previous = load_checkpoint(out / CHECKPOINT, phi, optimizer)
        log, start = previous["log"], previous["step"]
    # pretrain's batch order (a seeded permutation per epoch), reused with this job's sizes
    batches = SimpleNamespace(pool_size=rows, batch_size=min(config.batch_size, rows), seed=config.seed)
    started = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)
    phi.train()
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=record["method"],
                    mininterval=2.0)
    for step in progress:
        torch.manual_seed(step_seed(config.seed, step))
        batch = torch.from_numpy(batch_indices(step, batches)).to(device)
        with compute_precision(device, config.precision):
            loss, parts = step_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        row = {"step": done, "loss": round(loss.item(), 6), **{k: round(v, 6) for k, v in parts.items()},
               "seconds": round(time.perf_counter() - started, 2)}
        log.append(row)
        progress.set_postfix(loss=row["loss"])
        if verbose and (done % config.log_every == 0 or done == config.steps):
            print(json.dumps(row), flush=True)
        if done % config.checkpoint_every == 0 or done == config.steps:
            if done == config.steps:
                write_json(out / "log.json", log)  # before the checkpoint that marks the run finished (run_folder)
            save_checkpoint(out / CHECKPOINT, phi, optimizer,
                            {**record, "step": done, "log": log, "config": asdict(config), "phi": phi_record(phi),
                             "train_seconds": row["seconds"]})
    phi.eval()
    return log


def load_phi(run: Path | str, device: torch.device | str = "cpu") -> tuple[Phi, dict]:
    """phi (eval mode) and the checkpoint record of a finished run folder."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise FileError(path, "does not exist", "train the run first (its folder is the config's `out`)")
    record = read_record(path, required=("phi", "config"))
    phi = build_phi(record["phi"])
    load_checkpoint(path, phi)
    return phi.to(device).eval(), record


def finished_run(run: Path | str) -> bool:
    """Whether ``run`` holds a finished run (its checkpoint reached the config's steps): training the same
    config again with ``resume=True`` then reuses it as is, in about no time."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        return False
    record = read_record(path, required=("step", "config"))
    return record["step"] >= record["config"]["steps"]


def run_seconds(record: dict) -> dict[str, float]:
    """Where a run's time went, from its checkpoint record (``load_phi(run)[1]``), in seconds: loading the
    encoder and the stream features, SEARLE's OTI of its training images (SEARLE runs only), and phi's training
    steps (the time a progress bar over the steps shows). A resumed run counts its last session's setup."""
    seconds = {"encoder and stream features": record["prepare_seconds"]}
    if "oti_seconds" in record:
        seconds["OTI of the training images"] = record["oti_seconds"]
    return {**seconds, "training steps": record["train_seconds"]}


def loss_summary(log: list[dict]) -> dict[str, float | bool]:
    """A training curve in three numbers: the mean loss over the first and over the last tenth of the steps
    (at least one step each, so that one noisy step does not decide), and whether it was still falling at the end
    (the last tenth's mean below the tenth before it)."""
    losses = [row["loss"] for row in log]
    if not losses:
        raise ValueError("the training log is empty")
    window = max(1, len(losses) // 10)
    before = losses[-2 * window:-window] or losses[:window]
    last = sum(losses[-window:]) / window
    return {"first": sum(losses[:window]) / window, "last": last, "still_falling": last < sum(before) / len(before)}
