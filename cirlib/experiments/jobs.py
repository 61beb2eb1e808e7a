"""Experiments: training jobs from YAML configs, trained fusion modules evaluated as retrieval methods,
and the multi-seed results table.

A config's ``kind`` picks the job in :data:`JOBS` (its config dataclass and its run function), so
another trainer joins ``cirlib train`` with one entry. The fusion job builds the training
triplets' cached features, passes the validation split's metric into ``cirlib.train`` as a
callable (the training layer knows no metrics), trains, and writes ``results.json`` with the
config at the top. The stage-1 job (``kind: stage1``) fine-tunes the encoder itself and validates the sum fusion
with the current weights after every epoch. The config's ``on_missing`` reaches every dataset reader; each result
file says how many images were skipped and from which listing files (``"missing"``, empty counts when none were).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cirlib.encoders import describe
from cirlib.encoders.loading import Encoder, config_encoder
from cirlib.evaluation.evaluate import Method, evaluate_cirr, evaluate_fashioniq, metric_names
from cirlib.features import FeatureCache, cirr_features, fashioniq_features
from cirlib.features.extract import encode_images, encode_texts
from cirlib.features.splits import SplitFeatures, merged_missing, missing_summary
from cirlib.fusion import ZERO_SHOT_BASELINES, parameter_count, sum_fusion
from cirlib.inversion import LinCIRConfig, Pic2WordConfig, SearleConfig, train_lincir, train_pic2word, train_searle
from cirlib.train.pseudo_triplets import PseudoTripletConfig, pseudo_triplets
from cirlib.train.run_folder import open_run
from cirlib.train.stage1 import STAGE1_RUN, Stage1Config, image_triplets, stage1_loop
from cirlib.train.stage2 import FUSION_RUN, FusionTrainConfig, fusion_loop, load_trained_fusion
from cirlib.train.triplets import TripletFeatures, cirr_triplets, fashioniq_triplets
from cirlib.util.atomic import write_json
from cirlib.util.config import json_sha256, load_config, read_yaml
from cirlib.util.device import exact_float32
from cirlib.util.distributed import DistContext, init_distributed
from cirlib.util.errors import ConfigError

ValFeatures = Mapping[str, SplitFeatures] | SplitFeatures


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


def _dataset_label(config: FusionTrainConfig | Stage1Config) -> str:
    """The dataset folder's name, which labels its cache files and tables (the config checked ``dataset``)."""
    return Path(config.data_root).name


def val_features(encoder: Encoder, cache: FeatureCache | MemoryFeatures,
                 config: FusionTrainConfig | Stage1Config) -> ValFeatures:
    """The validation split's cached features: per FashionIQ category, or CIRR's val split (``config.on_missing``
    applies; skipped queries are not counted, so recall is over fewer queries than the paper's)."""
    label = _dataset_label(config)
    if config.dataset == "fashioniq":
        return {c: fashioniq_features(encoder, cache, config.data_root, c, "val", label, config.on_missing)
                for c in config.categories}
    return cirr_features(encoder, cache, config.data_root, "val", label, config.on_missing)


def train_features(encoder: Encoder, cache: FeatureCache, config: FusionTrainConfig) -> TripletFeatures:
    """The training split's triplets (FashionIQ with CLIP4Cir's four text forms; ``config.on_missing`` applies)."""
    label = _dataset_label(config)
    if config.dataset == "fashioniq":
        return fashioniq_triplets(encoder, cache, config.data_root, "train", config.categories, dataset=label,
                                  on_missing=config.on_missing)
    return cirr_triplets(encoder, cache, config.data_root, "train", label, config.on_missing)


def evaluate(dataset: str, features: ValFeatures, method: Method) -> dict[str, float]:
    """The dataset's own metrics for ``method``."""
    return evaluate_fashioniq(features, method) if dataset == "fashioniq" else evaluate_cirr(features, method)


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
                          lambda model: evaluate(config.dataset, features, fusion_method(model)), pseudo, every_k,
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
            "metrics": evaluate(config.dataset, features, fusion_method(model)),
            "missing": missing_summary(merged_missing(features))}


class MemoryFeatures:
    """:class:`FeatureCache`'s interface without files: features computed afresh from the encoder's weights as they
    are now, held in memory only (stage 1 scores every epoch's weights; those features never enter a cache)."""

    def image_features(self, encoder: Encoder, names: Sequence[str], paths: Sequence[Path | str],
                       label: str) -> torch.Tensor:
        return encode_images(encoder, paths, progress=False)

    def text_features(self, encoder: Encoder, texts: Sequence[str], label: str) -> torch.Tensor:
        return encode_texts(encoder, texts, progress=False)


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
        return evaluate(config.dataset, features, sum_fusion)

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
        valid = metric_names(config.dataset, config.categories)
        if config.selection_metric not in valid:
            source = "command line" if overrides.get("selection_metric") is not None else str(path)
            raise ConfigError(source, "selection_metric", config.selection_metric,
                              f"one of {config.dataset}'s validation metrics: {', '.join(valid)} (or null)")
    return JOBS[kind], config


def config_variant(path: Path | str, runs: Path | str, **changes):
    """The config at ``path`` with ``changes``, run in ``<runs>/<file stem>-<hash of the config>``, so
    that reruns reuse a finished run and a changed config never resumes another config's run."""
    _, config = load_job_config(path)
    config = dataclasses.replace(config, **changes)
    key = json_sha256(dataclasses.asdict(config))[:8]
    return dataclasses.replace(config, out=str(Path(runs) / f"{Path(path).stem}-{key}"))


# ---- the multi-seed table -------------------------------------------------------------------------

TABLE_COLUMNS = {"fashioniq": ["dress R@10", "shirt R@10", "toptee R@10", "avg R@10", "avg R@50"],
                 "cirr": ["R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Avg"]}


def mean_std(rows: Sequence[Mapping[str, float]], columns: Sequence[str]) -> dict[str, list[float]]:
    """{column: [mean, sample std]} (std 0 for a single row)."""
    return {c: [float(np.mean([r[c] for r in rows])), float(np.std([r[c] for r in rows], ddof=1))
                if len(rows) > 1 else 0.0] for c in columns}


def seed_variant(config: FusionTrainConfig | Stage1Config, seed: int,
                 folder: Path | str | None = None) -> FusionTrainConfig | Stage1Config:
    """``config`` with ``seed``, run in ``<folder>/seed<seed>`` (``folder`` None: the config's ``out``): the run
    folder of each seed of a multi-seed table."""
    folder = Path(config.out if folder is None else folder)
    return dataclasses.replace(config, seed=seed, out=str(folder / f"seed{seed}"))


def seed_table(config_paths: Sequence[Path | str], seeds: Sequence[int], results: Path | str,
               runs: Path | str | None = None, on_missing: str | None = None) -> str:
    """Train every config with every seed (in ``<out>/seed<k>``, or ``<runs>/<name of out>/seed<k>``;
    finished runs are reused), add the image-only and text-only baselines, write
    ``<results>/fusion_<dataset folder>.json`` (with the baselines' skipped images under "missing") and return
    the table. ``on_missing`` (None: each config's own) overrides the configs' field."""
    rows: dict[str, dict[str, dict]] = {}
    for path in config_paths:
        _, base = load_job_config(path, on_missing=on_missing)
        if not isinstance(base, FusionTrainConfig):
            raise ConfigError(str(path), "kind", base.kind, "fusion: --seeds tabulates fusion jobs (the stage-1 "
                              "comparison: python -m cirlib.experiments.stage1_table)")
        label = _dataset_label(base)
        table = rows.setdefault(base.dataset, {"label": label, "config": {}, "rows": {}})
        if not table["rows"]:
            features = val_features(config_encoder(base), FeatureCache(base.cache), base)
            table["missing"] = missing_summary(merged_missing(features))
            for name in ("image only", "text only"):
                table["rows"][name] = {"runs": [evaluate(base.dataset, features, ZERO_SHOT_BASELINES[name])],
                                       "parameters": 0}
        folder = Path(base.out) if runs is None else Path(runs) / Path(base.out).name
        done = [run_fusion_job(seed_variant(base, seed, folder), resume=True) for seed in seeds]
        table["config"][base.fusion] = base.to_json()
        table["rows"][base.fusion] = {"runs": [r["best"] for r in done], "parameters": done[0]["parameters"],
                                      "seconds": [r["last"]["seconds"] for r in done]}
    texts = []
    for dataset, table in rows.items():
        columns = TABLE_COLUMNS[dataset]
        for row in table["rows"].values():
            row["mean_std"] = mean_std(row["runs"], columns)
        write_json(Path(results) / f"fusion_{table['label']}.json", {"seeds": list(seeds), **table})
        texts.append(format_seed_table(table, columns, seeds))
    return "\n\n".join(texts)


def format_seed_table(table: Mapping, columns: Sequence[str], seeds: Sequence[int]) -> str:
    """A markdown table: one row per method, mean ± std over ``seeds`` of the best validation epoch."""
    lines = [f"{table['label']} (val, best epoch; mean ± std over seeds {', '.join(map(str, seeds))})", "",
             "| method | params | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name, row in table["rows"].items():
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in (row["mean_std"][c] for c in columns)]
        lines.append(f"| {name} | {row['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
