"""What each ``cirlib`` command does with its parsed arguments (the parser and the error handler: :mod:`cirlib.cli`).

Heavy modules are imported inside the commands, so that ``cirlib synth`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cirlib.analysis.benchmark import format_summary, prepare_benchmark
from cirlib.data.synth.config import preset
from cirlib.util.atomic import write_json
from cirlib.util.config import load_config
from cirlib.util.errors import CirlibError, FileError


def synth(args: argparse.Namespace) -> dict:
    """Write (or reuse, or repair) the synthetic benchmark and print its summary."""
    config = preset(args.size, seed=args.seed)
    print(f"synth config: {json.dumps(config.to_json())}", flush=True)
    start = time.perf_counter()
    manifest = prepare_benchmark(args.out, config, workers=args.workers, overwrite=args.overwrite,
                                 verify=args.verify)
    print(format_summary(manifest))
    print(f"\nbenchmark ready in {args.out} ({time.perf_counter() - start:.0f} s); datacards: {args.out}/*/datacard.md")
    return manifest


def zeroshot(args: argparse.Namespace) -> None:
    """Evaluate the zero-shot baselines on the synthetic benchmark; save ``zero_shot.json``."""
    from cirlib.encoders import describe, load_encoder
    from cirlib.evaluation.evaluate import benchmark_features, evaluate_methods, format_results
    from cirlib.features import FeatureCache
    from cirlib.features.splits import merged_missing, missing_summary
    from cirlib.fusion import ZERO_SHOT_BASELINES
    from cirlib.metrics.protocols import PROTOCOLS

    encoder = load_encoder(args.model, pretrained=args.pretrained, preprocess=args.preprocess, device=args.device,
                           precision=args.feature_precision, quick_gelu=args.quick_gelu)
    run = {"model": args.model, "pretrained": args.pretrained, "encoder": describe(encoder),
           "benchmark": str(args.out), "cache": str(args.cache), "on_missing": args.on_missing}
    print(f"zero-shot config: {json.dumps(run)}", flush=True)
    features = benchmark_features(encoder, FeatureCache(args.cache), args.out, args.on_missing)
    results = evaluate_methods(features, ZERO_SHOT_BASELINES)
    missing = {name: missing_summary(merged_missing(split))
               for name, split in zip(PROTOCOLS, features)}
    print("\n" + format_results(results))
    write_json(Path(args.results) / "zero_shot.json", {"config": run, "results": results, "missing": missing})
    print(f"\nsaved {args.results}/zero_shot.json")


def pretrain(args: argparse.Namespace) -> None:
    """Train a small CLIP on the synthetic pretraining stream."""
    from cirlib.train import pretrain as pretraining

    config = load_config(pretraining.PretrainConfig, args.config, out=args.out, steps=args.steps, device=args.device,
                         precision=args.precision)
    pretraining.pretrain(config, resume=args.resume, overwrite=args.overwrite)


TRAIN_OVERRIDES = ("epochs", "seed", "device", "precision", "batch_size", "lr", "warmup_steps", "lr_schedule",
                   "selection_metric")
"""Config fields `cirlib train` sets from its options of the same names; the config checks them as it checks the
YAML, and its errors then name "command line"."""


def train(args: argparse.Namespace) -> None:
    """Train one config (its ``kind`` picks the job), or with ``--seeds`` every config with every seed."""
    from cirlib.experiments.jobs import load_job_config
    from cirlib.experiments.seeds import seed_table

    overrides = {name: getattr(args, name) for name in TRAIN_OVERRIDES}
    if args.seeds:
        if args.overwrite:
            raise CirlibError("--seeds reuses the finished runs it finds; --overwrite replaces one run. Fix: delete "
                              "the seed runs to retrain them, or drop --overwrite")
        given = ", ".join("--" + name.replace("_", "-") for name, value in overrides.items() if value is not None)
        if given:
            raise CirlibError(f"--seeds trains each config as its file says, so {given} would be ignored. Fix: set "
                              "those fields in the YAML files, or train one config without --seeds")
        print(seed_table(args.config, args.seeds, args.results, runs=args.out, on_missing=args.on_missing))
        return
    if len(args.config) != 1:
        raise ValueError("several --config files need --seeds (the multi-seed table); train one config at a time")
    job, config = load_job_config(args.config[0], out=args.out, on_missing=args.on_missing, **overrides)
    job.run(config, resume=args.resume, overwrite=args.overwrite)


def evaluate(args: argparse.Namespace) -> None:
    """Evaluate a trained fusion checkpoint on its validation split; save ``eval_<run>_<checkpoint>.json``."""
    from cirlib.evaluation.evaluate import format_table
    from cirlib.experiments.jobs import evaluate_checkpoint

    path = Path(args.run_dir) / f"{args.checkpoint}.safetensors" if Path(args.run_dir).is_dir() else Path(args.run_dir)
    if not path.is_file():
        raise FileError(path, "no checkpoint there", "pass a run folder of `cirlib train` or a .safetensors file")
    result = evaluate_checkpoint(path, cache=args.cache, device=args.device, on_missing=args.on_missing)
    print(f"eval config: {json.dumps(result['config'])}")
    print(format_table({result["config"]["fusion"]: result["metrics"]}, list(result["metrics"]),
                       f"{Path(result['config']['data_root']).name} (val), epoch {result['epoch']}, {path}"))
    out = Path(args.results) / f"eval_{path.absolute().parent.name}_{path.stem}.json"
    write_json(out, result)
    print(f"saved {out}")


def study(args: argparse.Namespace) -> None:
    """Run the MoE gating study and print its tables."""
    from cirlib.experiments.moe_study import MoEStudyConfig, run_moe_study

    config = load_config(MoEStudyConfig, args.config, seeds=args.seeds, runs=args.runs, results=args.results)
    print(f"study config: {json.dumps(config.to_json())}", flush=True)
    summary = run_moe_study(config)
    print("\n\n".join(summary["tables"].values()))
    print(f"saved {Path(config.results)}/moe_study.json, moe_study.md, moe_study_routing.png")


def reproduce(args: argparse.Namespace) -> None:
    """A paper setting on a real dataset, printed beside the paper's numbers and saved."""
    from dataclasses import asdict

    from cirlib.experiments import reproduce as reproduction

    fields = reproduction.ReproduceConfig.__dataclass_fields__
    config = reproduction.resolve_settings(load_config(reproduction.ReproduceConfig, None,
                                                       **{name: getattr(args, name) for name in fields}))
    print(f"reproduce config: {json.dumps(asdict(config))}", flush=True)
    result = reproduction.reproduce(config)
    print(reproduction.format_comparison(result))
    print(f"saved {reproduction.save_result(result, config.results)}")


def demo(args: argparse.Namespace) -> None:
    """The main job end to end on the synthetic benchmark."""
    from cirlib.apps.demo import DemoConfig, run_demo

    names = set(DemoConfig.__dataclass_fields__) - {"benchmark", "fusions"}
    run_demo(DemoConfig(benchmark=args.out, **{name: getattr(args, name) for name in names}))
