"""What the three inversion trainers share: the base config, setup, and one readable training loop.

The loop trains only the mapping network phi; the CLIP encoders stay frozen. Each step's random
draws (batch rows, dropout, noise) are a pure function of (seed, step), so a resumed run repeats
the numbers of an uninterrupted one. The run folder holds ``config.json``, ``log.json`` and
``checkpoint.safetensors`` (``cirlib.train.checkpoint``: phi's weights, AdamW state, and a record
with the config, phi's sizes, the encoder identity and the timings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic import write_json
from ..config import check_precision
from ..encoders.device import compute_precision
from ..encoders.loading import Encoder, describe, load_encoder
from ..train.checkpoint import load_checkpoint, read_record, save_checkpoint
from ..train.pretrain import batch_indices
from .inject import PromptEncoder
from .mapping import Phi, PhiConfig, build_phi, phi_record
from .stream import StreamFeatures, stream_features

CHECKPOINT = "checkpoint.safetensors"
# A step's loss: (loss tensor, extra numbers for the log) for the training rows given.
StepLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class InversionConfig:
    """Fields every inversion job has; each method's config adds its own (and its own defaults)."""

    out: str = "runs/inversion"
    model: str = "synthclip"          # load_encoder's first argument: bundled name, model folder, architecture
    pretrained: str | None = None
    preprocess: str | None = None
    cache: str = "data/cache"         # where the stream features are cached
    stream_seed: int = 0              # the synthetic pretraining stream the training pairs come from
    stream_start: int = 2_000_000     # far from synthclip's pretraining pool and held-out pairs
    train_pairs: int = 20_000
    seed: int = 0
    steps: int = 500
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.01
    phi_hidden_mult: int = 4          # phi's hidden width = this x the CLIP feature width
    phi_layers: int = 2
    phi_dropout: float = 0.5
    phi_activation: str = "gelu"
    phi_dropout_first: bool = False
    template: str = "a photo of $ that {}"  # query template at evaluation; "$" is the placeholder
    placeholder: str = "$"
    log_every: int = 50
    checkpoint_every: int = 250
    device: str = "auto"
    precision: str = "auto"           # auto (bf16 autocast on CUDA, float32 on CPU) | float32 | bfloat16 | float16
    workers: int | None = None

    def __post_init__(self) -> None:
        check_precision(self.precision)


@dataclass
class Setup:
    """A job's frozen encoder, prompt encoder and stream features."""

    encoder: Encoder
    prompts: PromptEncoder
    stream: StreamFeatures
    seconds: float


def prepare(config: InversionConfig, method: str) -> Setup:
    """Print the config, save it, load and freeze the encoder, and load (or compute) the stream features."""
    started = time.perf_counter()
    print(f"{method} config: {json.dumps(asdict(config))}", flush=True)
    write_json(Path(config.out) / "config.json", {"method": method, **asdict(config)})
    encoder = load_encoder(config.model, pretrained=config.pretrained, preprocess=config.preprocess,
                           device=config.device)
    print(describe(encoder), flush=True)
    stream = stream_features(encoder, config.cache, config.stream_seed, config.stream_start, config.train_pairs,
                             config.workers)
    return Setup(encoder, PromptEncoder.from_encoder(encoder, config.placeholder),
                 stream, time.perf_counter() - started)


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
        record: dict, resume: bool = False) -> list[dict]:
    """Train ``phi`` for ``config.steps`` AdamW steps on batches of ``rows`` training rows; log and
    checkpoint. ``record`` (method, encoder, timings so far) is stored in every checkpoint."""
    out = Path(config.out)
    optimizer = torch.optim.AdamW(phi.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    log, start = [], 0
    if resume and (out / CHECKPOINT).is_file():
        previous = load_checkpoint(out / CHECKPOINT, phi, optimizer)
        log, start = previous["log"], previous["step"]
        print(f"resumed at step {start}", flush=True)
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
        if done % config.log_every == 0 or done == config.steps:
            print(json.dumps(row), flush=True)
        if done % config.checkpoint_every == 0 or done == config.steps:
            save_checkpoint(out / CHECKPOINT, phi, optimizer,
                            {**record, "step": done, "log": log, "config": asdict(config), "phi": phi_record(phi),
                             "train_seconds": row["seconds"]})
    phi.eval()
    write_json(out / "log.json", log)
    return log


def load_phi(run: Path | str, device: torch.device | str = "cpu") -> tuple[Phi, dict]:
    """phi (eval mode) and the checkpoint record of a finished run folder."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train the run first (its folder is the config's `out`)")
    record = read_record(path)
    phi = build_phi(record["phi"])
    load_checkpoint(path, phi)
    return phi.to(device).eval(), record
