"""Training jobs from YAML configs: a config's ``kind`` picks the job in :data:`JOBS` (its config dataclass and its
run function), so another trainer joins ``cirlib train`` with one entry; trained fusion modules as retrieval methods.

The fusion job builds the training triplets' cached features, passes the validation split's metric into
``cirlib.train`` as a callable (the training layer knows no metrics), trains, and writes ``results.json`` with the
config at the top. The stage-1 job (``kind: stage1``) fine-tunes the encoder itself and validates the sum fusion
with the current weights after every epoch. Each result file says how many images were skipped and from which
listing files (``"missing"``, empty counts when none were).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cirlib.encoders import describe
from cirlib.encoders.loading import Encoder, config_encoder
from cirlib.evaluation.evaluate import Method, evaluate_split
from cirlib.experiments.job_features import MemoryFeatures, train_features, val_features
from cirlib.features import FeatureCache
from cirlib.features.splits import merged_missing, missing_summary
from cirlib.fusion import parameter_count, sum_fusion
from cirlib.inversion import LinCIRConfig, Pic2WordConfig, SearleConfig, train_lincir, train_pic2word, train_searle
from cirlib.metrics.protocols import protocol, require_metric
from cirlib.train.pseudo_triplets import PseudoTripletConfig, pseudo_triplets
from cirlib.train.run_folder import open_run
from cirlib.train.stage1 import STAGE1_RUN, Stage1Config, image_triplets, stage1_loop
from cirlib.train.stage2 import FUSION_RUN, FusionTrainConfig, fusion_loop, load_trained_fusion
from cirlib.util.atomic import write_json
from cirlib.util.config import json_sha256, load_config, read_yaml
from cirlib.util.device import exact_float32
from cirlib.util.distributed import DistContext, init_distributed
from cirlib.util.errors import ConfigError


def fusion_method(model: torch.nn.Module, chunk: int = 8192) -> Method:
    """A trained fusion module as an evaluation ``Method``: eval mode, no gradient, in chunks, CPU output.

    Always in exact float32 (whatever precision it trained in), so its numbers are the same on every device.
    """
    device = next(model.parameters(), torch.empty(0)).device

    def method(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad(), exact_float32():
            parts = [model(image[i:i + chunk].to(device, torch.float32),
                           text[i:i + chunk].to(device, torch.float32)).float().cpu()
                     for i in range(0, len(image), chunk)]
        return torch.cat(parts) if parts else torch.empty(0, image.shape[1])
    return method


def run_fusion_job(config: FusionTrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
                   verbose: bool = True) -> dict:
    """Encode (or load cached) features, train with per-epoch validation, write ``<out>/results.json``.

    The run folder is held for the whole job, with :func:`~cirlib.train.stage2.train_fusion`'s rules
    (``cirlib.train.run_folder``). A finished run is reused as is: its ``results.json`` is returned, and
    nothing is encoded or written. ``progress`` shows the encoding and per-epoch bars, ``verbose`` the
    training log (config, one JSON row per epoch, resume, pseudo-triplet counts); the command line keeps
    both, a notebook turns them off.
    """
    context = init_distributed(config.device)
    with open_run(config.out, FUSION_RUN, config.to_json(), resume, overwrite, main=context.is_main,
                  verbose=verbose) as previous:
        stored = _stored_results(Path(config.out)) if FUSION_RUN.finished(previous) else None
        return stored if stored is not None else _fusion_job(config, previous, context, progress, verbose)


def _stored_results(out: Path) -> dict | None:
    """A finished run's ``results.json``; None when it is missing or unreadable (the job then writes it again)."""
    try:
        return json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fusion_job(config: FusionTrainConfig, previous: dict | None, context: DistContext, progress: bool,
                verbose: bool) -> dict:
    """:func:`run_fusion_job`'s work in the run folder it holds, continuing the checkpoint record ``previous``."""
    encoder = config_encoder(config, context.device)
    cache = FeatureCache(config.cache, context=context, progress=progress)  # under torchrun each encodes its share
    data, features = train_features(encoder, cache, config), val_features(encoder, cache, config)
    pseudo, counts, every_k = None, {}, 0
    if config.pseudo_triplets is not None:
        pseudo_config = PseudoTripletConfig(**config.pseudo_triplets)
        pseudo, counts = pseudo_triplets(data, pseudo_config)
        every_k = pseudo_config.every_k
        if context.is_main and verbose:
            print(f"pseudo triplets: {counts}", flush=True)
    trained = fusion_loop(config, data, previous, context,
                          lambda model: evaluate_split(config.dataset, features, fusion_method(model)), pseudo, every_k,
                          progress, verbose)
    results = {"config": config.to_json(), "encoder": describe(encoder), "train triplets": len(data),
               "pseudo triplets": counts, "parameters": parameter_count(trained["model"]),
               "best": trained["best"], "last": trained["last"],
               "missing": {"train": missing_summary(data.missing), "val": missing_summary(merged_missing(features))}}
    if context.is_main:
        write_json(Path(config.out) / "results.json", results)
    return results


def evaluate_checkpoint(path: Path | str, cache: Path | str = "data/cache", device: str = "auto",
                        on_missing: str | None = None) -> dict:
    """Re-evaluate a checkpoint from :func:`run_fusion_job` on its config's validation split.

    The checkpoint's config says what to read (``data_root``, the encoder); what is written (the feature
    cache) goes to the caller's ``cache``, never where a file's metadata says. ``on_missing`` (None: the run's
    own) says whether images absent now stop the evaluation or skip their queries (counted under "missing").
    """
    model, record = load_trained_fusion(path)
    stored = {**record["config"], "cache": str(cache), "device": device}
    config = load_config(FusionTrainConfig, None, **{**stored, "on_missing": on_missing or stored.get("on_missing")})
    features = val_features(config_encoder(config, device), FeatureCache(config.cache), config)
    return {"config": record["config"], "checkpoint": str(path), "epoch": record["epoch"],
            "metrics": evaluate_split(config.dataset, features, fusion_method(model)),
            "missing": missing_summary(merged_missing(features))}


def run_stage1_job(config: Stage1Config, resume: bool = False, overwrite: bool = False, progress: bool = True,
                   verbose: bool = True) -> dict:
    """Fine-tune the config's encoder (:mod:`cirlib.train.stage1`), scoring the sum fusion on the val split with the
    current weights after every epoch, and write ``<out>/results.json``; the run-folder rules, the reuse of a
    finished run and ``progress`` / ``verbose`` are :func:`run_fusion_job`'s."""
    with open_run(config.out, STAGE1_RUN, config.to_json(), resume, overwrite, verbose=verbose) as previous:
        stored = _stored_results(Path(config.out)) if STAGE1_RUN.finished(previous) else None
        return stored if stored is not None else _stage1_job(config, previous, progress, verbose)


def _stage1_job(config: Stage1Config, previous: dict | None, progress: bool, verbose: bool) -> dict:
    """:func:`run_stage1_job`'s work in the run folder it holds, continuing the checkpoint record ``previous``."""
    started = time.perf_counter()
    encoder = config_encoder(config)
    base, triplets, missing = describe(encoder), image_triplets(config), {}

    def validate(current: Encoder) -> dict[str, float]:
        features = val_features(current, MemoryFeatures(), config)
        missing.update(merged_missing(features))
        return evaluate_split(config.dataset, features, sum_fusion)

    trained = stage1_loop(config, encoder, triplets, previous, validate, progress, verbose)
    results = {"config": config.to_json(), "encoder": base, "train triplets": len(triplets),
               "parameters": parameter_count(encoder.model), "best": trained["best"], "last": trained["last"],
               "seconds": round(time.perf_counter() - started, 1),
               "missing": {"train": missing_summary(triplets.missing), "val": missing_summary(missing)}}
    write_json(Path(config.out) / "results.json", results)
    return results


@dataclass(frozen=True)
class Job:
    """A kind of training job: its config dataclass (with a ``kind`` field) and ``run(config, resume, overwrite)``."""

    config: type
    run: Callable[..., dict]


def _run_folder(train: Callable[..., Path]) -> Callable[..., dict]:
    """A trainer that returns its run folder, as a job that returns a summary."""
    return lambda config, resume=False, overwrite=False: {
        "config": dataclasses.asdict(config), "out": str(train(config, resume=resume, overwrite=overwrite))}


JOBS: dict[str, Job] = {"fusion": Job(FusionTrainConfig, run_fusion_job),
                        "pic2word": Job(Pic2WordConfig, _run_folder(train_pic2word)),
                        "searle": Job(SearleConfig, _run_folder(train_searle)),
                        "lincir": Job(LinCIRConfig, _run_folder(train_lincir)),
                        "stage1": Job(Stage1Config, run_stage1_job)}


def load_job_config(path: Path | str, **overrides):
    """(job, config) for the YAML at ``path``; its ``kind`` field (default "fusion") picks the job. The config is
    validated whole (every field, and a fusion or stage-1 job's ``selection_metric`` against its dataset's
    metrics).

    ``overrides`` (None: not given) come from the command line: an error about one of them names "command line",
    and so does one that the job's kind has no field for."""
    loaded = read_yaml(path)
    kind = loaded.get("kind", "fusion")
    if kind not in JOBS:
        raise ConfigError(str(path), "kind", kind, f"one of {', '.join(JOBS)}")
    fields = {field.name for field in dataclasses.fields(JOBS[kind].config)}
    for name, value in overrides.items():
        if value is not None and name not in fields:
            raise ConfigError("command line", name, value, f"nothing: a {kind} job has no such field (drop it)")
    config = load_config(JOBS[kind].config, path, **overrides)
    if isinstance(config, (FusionTrainConfig, Stage1Config)) and config.selection_metric is not None:
        source = "command line" if overrides.get("selection_metric") is not None else str(path)
        require_metric(config.selection_metric, protocol(config.dataset).metric_names(config.categories), source,
                       "selection_metric", f"{config.dataset}'s validation metrics (or null)")
    return JOBS[kind], config


def config_variant(path: Path | str, runs: Path | str, **changes):
    """The config at ``path`` with ``changes``, run in ``<runs>/<file stem>-<hash of the config>``, so
    that reruns reuse a finished run and a changed config never resumes another config's run."""
    _, config = load_job_config(path)
    config = dataclasses.replace(config, **changes)
    key = json_sha256(dataclasses.asdict(config))[:8]
    return dataclasses.replace(config, out=str(Path(runs) / f"{Path(path).stem}-{key}"))

